"""Exposed ports of a shell on a remote node: the node agent (its own netns and address on a test
bridge) serves its shells' ports itself, the control plane answers with the URL of that node's proxy
and sends it the table of its ports, so a request through that URL crosses the link to the node and
reaches the service in the shell; a port closed through the API stops answering there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.sdk import Shells
from tests.support.waiting import wait_until

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine

WAIT_S = 20.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeMachine]:
    root = Path(tmp_path_factory.mktemp("ingress-node"))
    secret = cluster_secret(root)
    with node_machine(root / "a", secret) as machine:
        machine.start("node-a", {"SHELLS_INGRESS_HOST": machine.address, "SHELLS_INGRESS_PORT": "8090"})
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
