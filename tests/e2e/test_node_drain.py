"""Shells move between machines through the object store, end to end: two node agents, each on its
own "machine" (network namespace and address on a test bridge) and each with its own connection to
a real S3 server (SeaweedFS), and a control plane driving them. A stopped container shell and a
paused wasm shell with files are drained off node-a by the CLI (a running shell stays) and come
back on node-b with their files; then node-a's agent is killed with SIGKILL, a paused shell it held
is marked lost as node loss marks it, and it is recovered on node-b from its saved state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from shells.domain.states import ShellState
from shells.objects.store import S3Location, S3Objects
from shells.sdk import Shell, Shells
from shells.store.moves import MoveStore
from shells.store.repository import EventDraft, Store
from tests.support.s3 import S3Server, s3_server
from tests.support.s3 import missing as s3_missing

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine
from .test_node_remote import on_node

WAIT_S = 60.0
BUCKET = "cluster"


@pytest.fixture(scope="module")
def store_server() -> Iterator[S3Server]:
    reason = s3_missing()
    if reason is not None:
        pytest.skip(reason)
    with s3_server(bind="0.0.0.0") as server:  # the nodes reach it at their bridge's address

        async def make_bucket() -> None:
            objects = S3Objects(S3Location.parse(server.url(BUCKET)))
            await objects.create_bucket()
            await objects.aclose()

        anyio.run(make_bucket)
        yield server


def store_url(server: S3Server, host: str = "127.0.0.1") -> str:
    return server.url(BUCKET, prefix="instance").replace("@127.0.0.1:", f"@{host}:")


@pytest.fixture(scope="module")
def machines(
    tmp_path_factory: pytest.TempPathFactory, store_server: S3Server
) -> Iterator[tuple[NodeMachine, NodeMachine]]:
    root = Path(tmp_path_factory.mktemp("nodes"))
    secret = cluster_secret(root)
    with node_machine(root / "a", secret) as a, node_machine(root / "b", secret) as b:
        for machine, name in ((a, "node-a"), (b, "node-b")):
            machine.start(name, env={"SHELLS_OBJECT_STORE": store_url(store_server, machine.gateway)})
        yield a, b


@pytest.fixture(scope="module")
def control(
    machines: tuple[NodeMachine, NodeMachine],
    store_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    env = {
        "SHELLS_NODES": ",".join(m.url for m in machines),
        "SHELLS_CLUSTER_SECRET_FILE": str(machines[0].secret_file),
        "SHELLS_OBJECT_STORE": store_url(store_server),
    }
    server = ServerProcess(Path(tmp_path_factory.mktemp("control")), warm_pool=0, env=env)
    with serving(server, "node-drain-control") as running:
        yield running


def record(control: ServerProcess) -> Store:
    return Store(control.record_url)


def on_node_a(client: Shells, control: ServerProcess, *args: str, **options: str) -> Shell:
    """A new shell on node-a; one made on node-b is deleted. Placement follows each node's measured
    room and counts a placement against its node for a while, so node-b cannot take every try, but
    node-a, holding the test's other shells, may lose the first few."""
    for _ in range(8):
        shell = client.create(*args, **options)  # type: ignore[arg-type]
        if on_node(control, shell.id) == "node-a":
            return shell
        shell.kill()
    raise AssertionError("no shell was placed on node-a")


def cli(control: ServerProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {"SHELLS_BASE_URL": control.url, "SHELLS_API_TOKEN": control.token}
    return subprocess.run(
        [sys.executable, "-m", "shells.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_drain_moves_a_stopped_container_and_a_paused_wasm_shell_with_their_files(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    a, b = machines
    client = control.client()
    box = on_node_a(client, control)
    box.files.write("/workspace/notes.txt", "written on node-a\n")
    assert box.commands.run("echo in-the-rootfs > /etc/moved-marker").exit_code == 0
    box.stop()
    wasm = on_node_a(client, control, "python", runtime="wasm")
    wasm.files.write("/workspace/w.txt", "wasm on node-a")
    wasm.pause()
    busy = on_node_a(client, control)
    try:
        done = cli(control, "admin", "node", "drain", "node-a", "--json")
        assert done.returncode == 3, done.stderr  # something stayed: the running shell
        report = json.loads(done.stdout)
        assert {m["shell"]: m["to"] for m in report["moved"]} == {box.id: "node-b", wasm.id: "node-b"}
        assert [x["shell"] for x in report["left"]] == [busy.id]
        assert not (a.data_dir / "storage" / "pool" / "shells" / box.id).exists()  # gone from node-a
        assert (b.data_dir / "storage" / "pool" / "shells" / box.id).exists()

        assert box.refresh().state == "stopped" and box.info.node == "node-b"
        box.start()
        assert box.files.read("/workspace/notes.txt") == b"written on node-a\n"
        assert box.commands.run("cat /etc/moved-marker").stdout == "in-the-rootfs\n"
        assert wasm.refresh().state == "paused" and wasm.info.node == "node-b"
        wasm.resume()
        assert wasm.files.read("/workspace/w.txt") == b"wasm on node-a"

        # cordoned: the next shells go to node-b; uncordoned, to both again
        made = [client.create() for _ in range(2)]
        assert {on_node(control, s.id) for s in made} == {"node-b"}
        for shell in made:
            shell.kill()
        done = cli(control, "admin", "node", "uncordon", "node-a")
        assert done.returncode == 0 and "takes new shells again" in done.stdout, done.stderr
    finally:
        for shell in (box, wasm, busy):
            shell.kill()


def lose_node_a(control: ServerProcess, a: NodeMachine, shell: Shell) -> None:
    """Once the paused ``shell``'s state is saved, kill node-a's agent with SIGKILL and mark the
    shell lost as node loss does."""
    store = record(control)
    try:
        deadline = time.monotonic() + WAIT_S
        while (save := MoveStore(store).get(shell.id)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert save is not None and save.state is ShellState.PAUSED and save.taken_on == "node-a"

        assert a.proc is not None
        a.proc.kill()  # SIGKILL: the node is gone without a word
        a.proc.wait(timeout=30)
        reason = "node node-a is gone: its lease expired"  # what node loss records
        draft = EventDraft(shell.info.tenant, shell.id, "system", "system", "state", "lost", "lost", reason)
        store.change_state(shell.id, ShellState.LOST, reason, draft)
    finally:
        store.close()


def test_a_lost_nodes_paused_shell_is_recovered_on_another_node(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    a, _ = machines
    client = control.client()
    shell = on_node_a(client, control, "python", runtime="wasm")
    shell.files.write("/workspace/data.txt", "paused on node-a, which then died")
    shell.pause()
    lose_node_a(control, a, shell)
    assert shell.refresh().state == "lost"

    info = shell.recover()
    assert (info.state, info.node) == ("paused", "node-b")
    assert "its paused state saved on node node-a" in info.state_reason
    shell.resume()
    assert shell.files.read("/workspace/data.txt") == b"paused on node-a, which then died"
    shell.kill()
