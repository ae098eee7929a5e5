"""What a node agent serves its shells itself, on its own "machine" (its own netns and address on a
test bridge) under a control plane in another process:

- exposed ports: the control plane answers with the URL of that node's ingress proxy and sends it
  the table of its ports, so a request through that URL crosses the link to the node and reaches
  the service in the shell; a port closed through the API stops answering there;
- an allow list by hostname: the node's DNS resolver lets the shell reach an allowed name's address
  (on ``tests/support/fake_internet.py``), and a name not on the list is refused and logged in the
  shell's blocked list.

- secrets: the node's egress proxy swaps a shell's secret into its HTTPS request to the secret's
  host (``tests/support/fake_https.py``), with the CA and values the control plane sent it, and the
  use reaches the audit trail."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import dns.rdatatype
import httpx
import pytest

from shells.sdk import Shells
from tests.support.dns_zone_server import ThreadedZone
from tests.support.fake_https import FakeHttps
from tests.support.fake_internet import FakeInternet
from tests.support.waiting import wait_until

from .harness import ServerProcess, free_port, serving
from .node_link import NodeMachine, cluster_secret, node_machine

WAIT_S = 20.0
API = "api.fake.test"
A = dns.rdatatype.A
PROBE = (
    "import socket, sys\n"
    "try:\n"
    "    s = socket.create_connection((socket.gethostbyname(sys.argv[1]), 80), timeout=3)\n"
    "    print('ok', s.recv(200).decode().strip())\n"
    "except OSError as e:\n"
    "    print('blocked', type(e).__name__)\n"
)


@pytest.fixture(scope="module")
def api(internet: FakeInternet) -> Iterator[FakeHttps]:
    with FakeHttps(internet) as server:
        yield server


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, internet: FakeInternet, api: FakeHttps
) -> Iterator[NodeMachine]:
    """The node, whose shells' DNS goes upstream to a test zone on this machine's end of its link."""
    root = Path(tmp_path_factory.mktemp("ingress-node"))
    secret = cluster_secret(root)
    with node_machine(root / "a", secret) as machine:
        names = {"api.example.org": [(A, 60, [internet.b])], "evil.test": [(A, 60, [internet.c])]}
        with ThreadedZone(names, machine.gateway, free_port()) as zone:
            machine.start(
                "node-a",
                {
                    "SHELLS_INGRESS_HOST": machine.address,
                    "SHELLS_INGRESS_PORT": "8090",
                    "SHELLS_DNS_UPSTREAMS": f"{zone.address}:{zone.port}",
                    "SHELLS_EGRESS_CA_FILE": str(api.ca_file),  # how the node's proxy trusts the host
                },
            )
            yield machine


@pytest.fixture(scope="module")
def control(node: NodeMachine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"SHELLS_NODES": node.url, "SHELLS_CLUSTER_SECRET_FILE": str(node.secret_file)}
    server = ServerProcess(Path(tmp_path_factory.mktemp("ingress-control")), warm_pool=0, env=env)
    with serving(server, "node-ingress-control") as running:
        yield running


def answer(url: str, **headers: str) -> httpx.Response | None:
    try:
        return httpx.get(url, headers=headers, timeout=5)
    except httpx.HTTPError:
        return None


def test_a_port_exposed_on_a_remote_node_answers_through_that_nodes_proxy(
    control: ServerProcess, node: NodeMachine
) -> None:
    client: Shells = control.client()
    shell = client.create("python", network="localhost")
    try:
        shell.files.write("/workspace/hello.txt", b"from the remote node\n")
        shell.processes.start(["python3", "-m", "http.server", "8000"], cwd="/workspace")
        public = shell.ports.expose(8000, public=True)
        assert str(public.url) == f"http://{node.address}:8090/{shell.id}/8000/"

        found: list[httpx.Response] = []

        def served() -> bool:
            got = answer(str(public.url) + "hello.txt")
            if got is not None and got.status_code == 200:
                found.append(got)
            return bool(found)

        wait_until(served, WAIT_S, "the exposed port answering on its node")
        assert found[0].text == "from the remote node\n"
        listed = shell.ports.list()
        assert [str(p.url) for p in listed] == [str(public.url)]

        private = shell.ports.expose(8001)  # nothing listens there: its token is checked first
        assert private.token
        wait_until(
            lambda: (got := answer(str(private.url))) is not None and got.status_code == 401,
            WAIT_S,
            "the private port asking for its token",
        )
        with_token = answer(str(private.url), **{"X-Shells-Port-Token": private.token})
        assert with_token is not None and with_token.status_code == 502  # past the token: no server

        shell.ports.close(8000)
        wait_until(
            lambda: (got := answer(str(public.url))) is not None and got.status_code == 404,
            WAIT_S,
            "the closed port no longer answering",
        )
    finally:
        shell.kill()


def test_an_allow_list_by_hostname_holds_on_the_remote_node(
    control: ServerProcess, internet: FakeInternet
) -> None:
    client: Shells = control.client()
    shell = client.create("python", network="internet", allow=["api.example.org:80"])
    try:
        shell.files.write("/workspace/probe.py", PROBE.encode())

        def probe(name: str) -> str:
            return shell.commands.run(f"python3 /workspace/probe.py {name}", timeout=30).stdout.strip()

        assert probe("api.example.org").startswith(f"ok {internet.b}:80 from")
        assert probe("evil.test").startswith("blocked")
        wait_until(
            lambda: any(b.destination.startswith("evil.test") for b in shell.network().blocked),
            WAIT_S,
            "the refused name in the shell's blocked list",
        )
        assert (internet.c, 80) not in {(seen[0], seen[1]) for seen in internet.seen}
    finally:
        shell.kill()


def test_a_secret_is_swapped_into_https_by_the_nodes_egress_proxy(
    control: ServerProcess, api: FakeHttps
) -> None:
    client: Shells = control.client()
    value = "real" + secrets.token_hex(16)
    client.secrets.create("NODE_TOKEN", value, [API])
    shell = client.create("python", network="internet", secrets=["NODE_TOKEN"])
    curl = f'curl -sS --max-time 10 --resolve {API}:443:{api.address} -H "Authorization: Bearer $NODE_TOKEN" https://{API}/x'
    try:

        def brokered() -> bool:  # the node has its table within a second of the create
            api.clear()
            out = shell.commands.run(["sh", "-c", curl], timeout=60)
            return out.exit_code == 0 and any(value.encode() in head for head in api.heads())

        wait_until(brokered, WAIT_S, "the secret's value reaching its host through the node's proxy")
        assert value not in shell.commands.run(["sh", "-c", "env"]).stdout  # the shell holds a placeholder
        wait_until(
            lambda: bool(client.audit(action="secret.use", shell=shell.id)),
            WAIT_S,
            "the node's use of the secret in the audit trail",
        )
        used = client.audit(action="secret.use", shell=shell.id)
        assert all(e.details == {"host": API, "secret": "NODE_TOKEN"} for e in used)
    finally:
        shell.kill()
