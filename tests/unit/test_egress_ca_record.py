"""The instance's egress CA lives in the record, one for every control replica
(``control.egress_ca``), on SQLite and PostgreSQL: two replicas starting at once end with one CA,
a one-box install's ``data_dir/egress-ca`` becomes the record's, and a replica with another
secrets key refuses to start rather than sign with a CA of its own."""

from __future__ import annotations

import secrets
import ssl
import threading
from pathlib import Path

import pytest

from shells.control import egress_ca as shared
from shells.control.egress_ca import InstanceEgressCA, shared_ca_pem
from shells.control.secret_box import SecretBox
from shells.domain.errors import RuntimeFailure
from shells.runtime.network.egress_ca import EgressCA, new_ca_pem
from shells.store.egress_ca import EgressCAStore
from shells.store.repository import Store

HOST = "api.example.com"


def handshake(server: ssl.SSLContext, trusted_pem: str) -> None:
    """A TLS handshake in memory between ``server`` and a client that trusts only ``trusted_pem``
    (what a shell does through the egress proxy); raises ``ssl.SSLError`` if it fails."""
    client = ssl.create_default_context(cadata=trusted_pem)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(c_in, c_out, server_hostname=HOST)
    tls_server = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", tls_client), ("server", tls_server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("the handshake did not finish")


def test_two_replicas_starting_at_once_end_with_one_ca(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = SecretBox(secrets.token_bytes(32))
    both_made = threading.Barrier(2, timeout=30)

    def made_at_once(instance: str) -> tuple[str, str]:
        pem = new_ca_pem(instance)
        both_made.wait()  # each replica found no CA and made its own before either writes
        return pem

    monkeypatch.setattr(shared, "new_ca_pem", made_at_once)
    stores = [Store(migrated_url) for _ in range(2)]
    got: dict[int, tuple[str, str] | BaseException] = {}

    def start(i: int) -> None:
        try:
            got[i] = shared_ca_pem(stores[i], box, tmp_path / f"control-{i}" / "egress-ca", f"i{i}")
        except BaseException as exc:  # reported by the assertion below
            got[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not any(isinstance(v, BaseException) for v in got.values()), got
        assert got[0] == got[1], "the two replicas took different CAs"
        key_pem, cert_pem = got[0]  # type: ignore[misc]
        record = EgressCAStore(stores[0]).get()
        assert record is not None and record[0] == cert_pem
        assert key_pem.encode() not in record[1]  # the key is sealed in the record
        assert not (tmp_path / "control-0" / "egress-ca").exists()  # nothing of it on a replica's disk
        again = InstanceEgressCA(stores[1], box, tmp_path / "control-1" / "egress-ca", "i1")
        again.load()  # a restart takes the same CA
        assert (again.key_pem, again.cert_pem) == (key_pem, cert_pem)
    finally:
        for store in stores:
            store.close()


def test_a_one_box_ca_becomes_the_records_and_old_shells_keep_trusting_it(
    migrated_url: str, tmp_path: Path
) -> None:
    box = SecretBox(secrets.token_bytes(32))
    before = EgressCA(tmp_path / "one-box" / "egress-ca", "one-box")  # what one box gave its shells
    store, later = Store(migrated_url), Store(migrated_url)
    try:
        one_box = InstanceEgressCA(store, box, tmp_path / "one-box" / "egress-ca", "one-box")
        one_box.load()
        assert (one_box.key_pem, one_box.cert_pem) == (before.key_pem, before.cert_pem)
        # a second replica, with no directory of its own, signs for what the first box's shells trust
        replica = InstanceEgressCA(later, box, tmp_path / "replica" / "egress-ca", "replica")
        replica.load()
        assert replica.cert_pem == before.cert_pem
        handshake(replica.server_context(HOST), before.cert_pem)
        with pytest.raises(ssl.SSLError):  # and the check is real: another CA's shells refuse it
            handshake(replica.server_context(HOST), new_ca_pem("other")[1])
    finally:
        store.close()
        later.close()


def test_a_replica_with_another_secrets_key_refuses_to_start(migrated_url: str, tmp_path: Path) -> None:
    store = Store(migrated_url)
    try:
        InstanceEgressCA(store, SecretBox(secrets.token_bytes(32)), tmp_path / "a", "a").load()
        stranger = InstanceEgressCA(store, SecretBox(secrets.token_bytes(32)), tmp_path / "b", "b")
        with pytest.raises(RuntimeFailure, match="SHELLS_SECRETS_KEY_FILE"):
            stranger.load()
    finally:
        store.close()
