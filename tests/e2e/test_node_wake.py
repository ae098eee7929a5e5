"""Wake on request and port traffic as activity through a node agent's ingress proxy, so a cluster's
exposed ports behave as one box's do (``control.node_ports``, ``node.ingress``):

- a paused microvm on a node, on its own "machine" (its own netns and address on a test bridge)
  under a control plane in another process, is resumed by the control plane for an HTTP request to
  its port on that node's proxy, and its own server answers that request; the resume is in the
  shell's events, by the system, naming the port and the node;
- a microvm with an idle timeout that serves HTTP through the node's proxy is not paused while
  requests keep coming, and is paused by the idle sweep once they stop;
- a wake the control plane refuses (the tenant's budget cap) is answered at once with the same 403
  the REST API gives, and the shell stays paused.

Paused shells that serve ports are microvms (a container cannot pause, a wasm shell has no sockets),
so this runs its own node offering the class rather than the local cluster, which has none (see
``local_cluster.NODES``); the control-plane paths are the ones every cluster runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell, Shells
from tests.support.waiting import wait_until

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine
from .tenancy import ADMIN, Tenancy, error
from .test_wake import PORT, SERVE

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

IDLE_S = 5


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeMachine]:
    root = Path(tmp_path_factory.mktemp("wake-node"))
    with node_machine(root / "a", cluster_secret(root)) as machine:
        env = {
            "SHELLS_CLASSES": "microvm",
            "SHELLS_INGRESS_HOST": machine.address,
            "SHELLS_INGRESS_PORT": "8090",
        }
        machine.start("node-a", env)
        yield machine


@pytest.fixture(scope="module")
def control(node: NodeMachine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"SHELLS_NODES": node.url, "SHELLS_CLUSTER_SECRET_FILE": str(node.secret_file)}
    server = ServerProcess(Path(tmp_path_factory.mktemp("wake-control")), warm_pool=0, env=env)
    with serving(server, "node-wake-control") as running:
        yield running


def serving_vm(client: Shells, node: NodeMachine, idle_timeout_s: int = 0) -> tuple[Shell, str]:
    """A microvm on the node whose HTTP server answers on PORT, exposed publicly; its URL there."""
    vm = client.create("python", runtime="microvm", network="localhost", idle_timeout_s=idle_timeout_s)
    vm.commands.run(["sh", "-c", SERVE], timeout=120)
    url = str(vm.ports.expose(PORT, public=True).url)
    assert url == f"http://{node.address}:8090/{vm.id}/{PORT}/"
    wait_until(lambda: status(url) == 200, 20, "the port answering on its node")
    return vm, url


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def wakes(vm: Shell) -> list[str]:
    return [e.message for e in vm.events() if e.action == "resume" and e.door == "system"]


def test_a_request_to_a_paused_vms_port_on_a_node_wakes_it_and_its_server_answers(
    control: ServerProcess, node: NodeMachine
) -> None:
    vm, url = serving_vm(control.client(), node)
    try:
        vm.pause()
        assert vm.refresh().state == "paused" and not wakes(vm)
        time.sleep(1.5)  # a pass of the ports sent to nodes: the node has the shell paused either way
        answer = httpx.get(url, timeout=120)  # waits for the resume, then is served
        assert answer.status_code == 200 and "hello-from-a-woken-shell" in answer.text, answer.text
        assert vm.refresh().state == "running"
        [woken] = wakes(vm)
        assert woken == f"woken by a request to port {PORT} on node node-a"
    finally:
        vm.kill()


def test_traffic_through_the_nodes_proxy_keeps_an_idle_timeout_vm_running(
    control: ServerProcess, node: NodeMachine
) -> None:
    vm, url = serving_vm(control.client(), node, idle_timeout_s=IDLE_S)
    try:
        until = time.monotonic() + 3 * IDLE_S
        while time.monotonic() < until:  # requests only: no exec, file or terminal touches it
            assert status(url) == 200
            time.sleep(0.5)
        assert vm.refresh().state == "running"
        assert not [e for e in vm.events() if e.action == "pause"]
        wait_until(lambda: vm.refresh().state == "paused", 4 * IDLE_S, "the idle sweep pausing it")
    finally:
        vm.kill()


def test_a_wake_refused_by_the_budget_cap_is_answered_403_at_once(
    control: ServerProcess, node: NodeMachine
) -> None:
    tenancy = Tenancy(control)
    try:
        tenant = tenancy.tenant("wake")
        owner = tenancy.caller(tenant, "ola", ADMIN)
        vm, url = serving_vm(control.client(owner.token), node)
        try:
            vm.pause()
            r = owner.http.put(f"/v1/tenants/{tenant}/billing", json={"budget_usd": "0"})
            assert r.status_code == 200, r.text
            started = time.monotonic()
            error(httpx.get(url, timeout=120), 403, "budget_exceeded")
            assert time.monotonic() - started < 10  # the refusal, not a wait for the request's timeout
            assert vm.refresh().state == "paused" and not wakes(vm)
        finally:
            vm.kill()
    finally:
        tenancy.close()
