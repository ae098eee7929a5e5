"""One egress CA for every control replica, on the local cluster (docs/cluster.md): a shell with a
secret created through the replica that does NOT hold the singleton duties trusts the CA that
replica gave it, while its node's egress proxy signs with the CA the OTHER replica (the holder)
sends the node with its table. The secret reaches its host over TLS through that proxy only if the
two are the same CA (before the CA was kept in the record, each replica had its own and curl in
the shell refused the proxy's certificate)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from shells.sdk import Shells
from tests.support.fake_https import FakeHttps
from tests.support.fake_internet import FakeInternet
from tests.support.waiting import wait_until

from .local_cluster import LocalCluster, fake_https_tls

API = "api.fake.test"
WAIT_S = 30.0


@pytest.fixture(scope="module")
def api(local_cluster: LocalCluster) -> Iterator[FakeHttps]:
    """The fake internet's HTTPS server, with the certificate the cluster's nodes trust upstream."""
    with FakeInternet() as net, FakeHttps(net, tls=fake_https_tls(local_cluster.root)) as server:
        yield server


def test_a_shell_made_through_one_replica_gets_its_secret_through_the_ca_the_other_sends(
    local_cluster: LocalCluster, api: FakeHttps
) -> None:
    holder = local_cluster.wait_for_holder()
    client: Shells = local_cluster.client(1 - holder)  # the replica that sends no node its table
    name, value = f"CA_{secrets.token_hex(4).upper()}", "real" + secrets.token_hex(16)
    client.secrets.create(name, value, [API])
    shell = client.create("python", network="internet", secrets=[name])
    curl = (
        f"curl -sS --max-time 10 --resolve {API}:443:{api.address} "
        f'-H "Authorization: Bearer ${name}" https://{API}/x'
    )
    tried: list[str] = []
    try:

        def brokered() -> bool:  # the holder sends the node its table within a second of the create
            api.clear()
            out = shell.commands.run(["sh", "-c", curl], timeout=60)
            tried.append(f"{out.exit_code}: {out.stderr.strip()[:120]}")
            return out.exit_code == 0 and any(value.encode() in head for head in api.heads())

        try:
            wait_until(brokered, WAIT_S, "the secret reaching its host through the node's egress proxy")
        except AssertionError as exc:  # what curl said (a certificate it refused, say)
            raise AssertionError(f"{exc}; the last tries: {tried[-3:]}") from None
        assert local_cluster.runs_duties(holder), "the duties moved during the test"
    finally:
        shell.kill()
        client.secrets.delete(name)
