"""TLS on the node RPC with client certificates (``node/tls.py``): a node agent on its own "machine"
with the cluster CA's certificate refuses a plaintext caller, a TLS caller without a certificate and
one whose certificate another CA signed, before the cluster secret is even looked at; a control plane
with the cluster's certificates drives a shell on it (plain calls, sessions and duplex WebSockets all
over TLS)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.node.tls import NodeTls
from shells.node.wire import Signer, load_secret
from tests.support.test_ca import TlsFiles, issue_each

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine

WAIT_S = 20.0
HELLO = "/v1/call/node/hello"
BODY = b'{"$d":[["a",[]],["k",{"$d":[]}]]}'


def tls_env(files: TlsFiles) -> dict[str, str]:
    return {
        "SHELLS_NODE_TLS_CERT_FILE": str(files.cert),
        "SHELLS_NODE_TLS_KEY_FILE": str(files.key),
        "SHELLS_NODE_TLS_CA_FILE": str(files.ca),
    }


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    cluster = Path(tmp_path_factory.mktemp("cluster-ca"))
    rogue = Path(tmp_path_factory.mktemp("rogue-ca"))
    issued = issue_each(cluster, {"node": ("shells-node",), "control": ("shells-control",)}, "cluster CA")
    issued |= issue_each(rogue, {"rogue": ("shells-control",)}, "another CA")
    return issued


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, TlsFiles]) -> Iterator[NodeMachine]:
    root = Path(tmp_path_factory.mktemp("tls-node"))
    with node_machine(root, cluster_secret(root)) as machine:
        machine.launch("node-tls", tls_env(certs["node"]))
        context = NodeTls(certs["control"].cert, certs["control"].key, certs["control"].ca).client_context()
        deadline = time.monotonic() + 300
        while not answers(machine, context):
            assert machine.proc is not None and machine.proc.poll() is None, machine.log_tail()
            assert time.monotonic() < deadline, f"the node did not serve TLS:\n{machine.log_tail()}"
            time.sleep(0.3)
        yield machine


def answers(machine: NodeMachine, context: ssl.SSLContext) -> bool:
    try:
        return hello(machine, context).status_code == 200
    except httpx.HTTPError:
        return False


def hello(machine: NodeMachine, context: ssl.SSLContext | None, scheme: str = "https") -> httpx.Response:
    """The signed ``hello`` call (the right cluster secret) with ``context``'s TLS."""
    headers = Signer(load_secret(machine.secret_file)).sign("POST", HELLO, BODY)
    url = f"{scheme}://{machine.address}:{machine.port}{HELLO}"
    with httpx.Client(verify=context or False, timeout=WAIT_S) as http:
        return http.post(url, content=BODY, headers=headers)


def test_the_node_refuses_callers_without_the_clusters_certificate(
    node: NodeMachine, certs: dict[str, TlsFiles]
) -> None:
    refused: dict[str, str] = {}
    with pytest.raises(httpx.HTTPError):  # plaintext, signed with the right secret: no HTTP answer
        refused["plaintext"] = str(hello(node, None, scheme="http").status_code)
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cafile=str(certs["node"].ca))
    rogue = NodeTls(certs["rogue"].cert, certs["rogue"].key, certs["node"].ca).client_context()
    for why, context in (("no certificate", anonymous), ("another CA's certificate", rogue)):
        with pytest.raises(httpx.HTTPError):
            refused[why] = str(hello(node, context).status_code)
    assert not refused, f"answered: {refused}"
    ours = NodeTls(certs["control"].cert, certs["control"].key, certs["control"].ca).client_context()
    assert hello(node, ours).status_code == 200


def test_a_control_plane_with_the_clusters_certificates_drives_a_shell_over_tls(
    node: NodeMachine, certs: dict[str, TlsFiles], tmp_path: Path
) -> None:
    env = {
        "SHELLS_NODES": node.url,  # http://: a control plane with TLS calls it over https
        "SHELLS_CLUSTER_SECRET_FILE": str(node.secret_file),
        **tls_env(certs["control"]),
    }
    server = ServerProcess(tmp_path / "control", warm_pool=0, env=env)
    with serving(server, "node-tls-control") as control, control.client() as client:
        shell = client.create("python")
        try:
            result = shell.commands.run("cat", ["-"], stdin="over tls\n")  # a duplex call
            assert (result.stdout, result.exit_code) == ("over tls\n", 0)
            assert shell.commands.run("echo $((6*7))").stdout == "42\n"
        finally:
            shell.kill()
