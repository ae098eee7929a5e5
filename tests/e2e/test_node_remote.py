"""The node boundary end to end: a node agent on its own "machine" (its own netns and address on a
test bridge) and a control plane in another process that drives a container shell through it —
create, a streamed exec, stdin, files, a terminal, stop, start, delete — and the attacks a node
must refuse: no signature, the wrong secret, a replayed request, a tampered body."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from shells.node.wire import Signer, load_secret
from shells.sdk import CommandExit, CommandOutput, ShellNotFound, Shells
from shells.store.repository import Store

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine

WAIT_S = 20.0


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeMachine, NodeMachine]]:
    root = Path(tmp_path_factory.mktemp("nodes"))
    secret = cluster_secret(root)
    with node_machine(root / "a", secret) as a, node_machine(root / "b", secret) as b:
        a.start("node-a", {"SHELLS_REGION": "eu"})
        b.start("node-b", {"SHELLS_REGION": "us"})
        yield a, b


@pytest.fixture(scope="module")
def node(machines: tuple[NodeMachine, NodeMachine]) -> NodeMachine:
    return machines[0]


@pytest.fixture(scope="module")
def control(
    machines: tuple[NodeMachine, NodeMachine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "SHELLS_NODES": ",".join(m.url for m in machines),
        "SHELLS_CLUSTER_SECRET_FILE": str(machines[0].secret_file),
        "SHELLS_REGION": "eu",  # node-a's: a create that names no region goes there
    }
    server = ServerProcess(Path(tmp_path_factory.mktemp("control")), warm_pool=0, env=env)
    with serving(server, "node-remote-control") as running:
        yield running


def on_node(control: ServerProcess, shell_id: str) -> str:
    """The node the record names for a shell."""
    store = Store(control.record_url)
    try:
        shell = store.get_shell(shell_id)
        assert shell is not None
        return shell.node
    finally:
        store.close()


def pool_holds(machine: NodeMachine, shell_id: str) -> bool:
    return (machine.data_dir / "storage" / "pool" / "shells" / shell_id).exists()


def test_a_container_shell_lives_its_whole_life_on_the_remote_node(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    client: Shells = control.client()
    shell = client.create("python")
    node = machines[0] if on_node(control, shell.id) == "node-a" else machines[1]
    assert pool_holds(node, shell.id)
    try:
        assert shell.info.state == "running"
        with shell.commands.stream(
            "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2; exit 7"
        ) as events:
            seen = [(type(e).__name__, getattr(e, "data", None)) for e in events]
        out = "".join(d for kind, d in seen if kind == "CommandOutput" and isinstance(d, str))
        assert seen[0][0] == "CommandStarted" and seen[-1][0] == "CommandExit"
        assert "line1\nline2\nline3\n" in out and "oops" in out
        result = shell.commands.run("cat", ["-"], stdin="fed through stdin\n")
        assert (result.stdout, result.exit_code) == ("fed through stdin\n", 0)
        assert shell.commands.run("exit 7").exit_code == 7

        blob = bytes(range(256)) * 4096  # 1 MiB: several frames each way
        assert shell.files.write("/workspace/blob.bin", blob) == len(blob)
        assert (
            hashlib.sha256(shell.files.read("/workspace/blob.bin")).digest() == hashlib.sha256(blob).digest()
        )
        assert "blob.bin" in [e.name for e in shell.files.list("/workspace")]

        cred = shell.term()
        with connect(cred.url + "?cols=90&rows=20", open_timeout=WAIT_S) as ws:
            ws.send(json.dumps({"type": "auth", "token": cred.token}))
            assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "ready"
            ws.send(b"echo $((6*7)); stty size\n")
            screen = b""
            deadline = time.monotonic() + WAIT_S
            while not re.search(rb"20 90\r\n", screen) and time.monotonic() < deadline:
                message = ws.recv(timeout=WAIT_S)
                if isinstance(message, bytes):
                    screen += message
            assert re.search(rb"[\r\n]42\r\n", screen) and b"20 90" in screen, screen
            ws.send(b"exit 4\n")
            while isinstance(message := ws.recv(timeout=WAIT_S), bytes):
                pass
            assert json.loads(message) == {"type": "exit", "exit_code": 4, "signal": None}

        # a kept process: its stdin fed while it runs (a duplex call), followed again by attach
        kept = shell.processes.start(["cat"], stdin=True)
        with shell.processes.attach(kept.pid) as followed:
            shell.processes.send_stdin(kept.pid, "to a kept process\n")
            shell.processes.close_stdin(kept.pid)
            heard = list(followed)
        assert "to a kept process" in "".join(e.data for e in heard if isinstance(e, CommandOutput))
        assert isinstance(heard[-1], CommandExit) and heard[-1].exit_code == 0

        shell.stop()
        assert shell.refresh().state == "stopped"
        shell.start()
        assert shell.files.read("/workspace/blob.bin")[:4] == blob[:4]  # its disk is the node's
    finally:
        shell.kill()
    with pytest.raises(ShellNotFound):
        client.get(shell.id)
    # the node holds nothing of it any more
    deadline = time.monotonic() + WAIT_S
    while pool_holds(node, shell.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pool_holds(node, shell.id)


def test_shells_spread_over_the_nodes_and_each_is_answered_by_its_own(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    client: Shells = control.client()
    shells = [client.create(region="eu"), client.create(region="us")]  # placed by region
    try:
        placed = {on_node(control, s.id): s for s in shells}
        assert set(placed) == {"node-a", "node-b"}
        assert {s.info.node for s in shells} == {"node-a", "node-b"}  # the record says so to its owner
        for machine, name in zip(machines, ("node-a", "node-b"), strict=True):
            shell = placed[name]
            assert pool_holds(machine, shell.id) and not pool_holds(machines[name == "node-a"], shell.id)
            shell.files.write("/workspace/where", name)
            assert shell.commands.run("cat /workspace/where").stdout == name
    finally:
        for shell in shells:
            shell.kill()


def signed(node: NodeMachine, path: str, body: bytes, secret: bytes | None = None) -> dict[str, str]:
    return Signer(secret or load_secret(node.secret_file)).sign("POST", path, body)


def test_the_node_refuses_every_caller_it_cannot_authenticate(
    control: ServerProcess, node: NodeMachine
) -> None:
    path = "/v1/call/node/hello"
    body = b'{"$d":[["a",[]],["k",{"$d":[]}]]}'
    with httpx.Client(base_url=node.url, timeout=WAIT_S) as http:
        good = signed(node, path, body)
        assert http.post(path, content=body, headers=good).status_code == 200  # the right secret works
        refused = {
            "no signature": http.post(path, content=body),
            "wrong secret": http.post(path, content=body, headers=signed(node, path, body, b"w" * 48)),
            "replayed": http.post(path, content=body, headers=good),
            "tampered body": http.post(
                path, content=body.replace(b"[]", b"[1]", 1), headers=signed(node, path, body)
            ),
            "another method": http.post(
                "/v1/call/container/destroy", content=body, headers=signed(node, path, body)
            ),
            "stale": http.post(
                path, content=body, headers=signed(node, path, body) | {"x-shells-time": "1.000"}
            ),
        }
        assert {why: r.status_code for why, r in refused.items()} == dict.fromkeys(refused, 401)
        assert all(r.content == b"unauthenticated" for r in refused.values())  # nothing else is said
    ws_url = node.url.replace("http", "ws")
    for path in ("/v1/session", "/v1/duplex/container/terminal"):  # the WebSocket doors alike
        with pytest.raises(InvalidStatus), connect(ws_url + path, open_timeout=WAIT_S):
            pass
        handshake = Signer(load_secret(node.secret_file)).sign("GET", path, b"")
        with connect(ws_url + path, additional_headers=handshake, open_timeout=WAIT_S):
            pass  # signed: accepted
        with pytest.raises(InvalidStatus), connect(ws_url + path, additional_headers=handshake):
            pass  # replayed


def test_a_control_plane_with_the_wrong_secret_is_refused_and_says_why(
    node: NodeMachine, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("x" * 48)
    server = ServerProcess(
        tmp_path / "control",
        warm_pool=0,
        env={"SHELLS_NODES": node.url, "SHELLS_CLUSTER_SECRET_FILE": str(wrong)},
    )
    with pytest.raises(RuntimeError, match="share one cluster secret"):  # it says so and stops
        server.start()
    server.stop()
