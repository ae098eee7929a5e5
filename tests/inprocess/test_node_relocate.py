"""Moving shells between nodes through the object store, on two fake nodes each behind a real node
agent with its own connection to a real S3 server (SeaweedFS): drain, uncordon, placement around a
cordon, recovering a lost shell, and every point where a move can be cut short (a failing target, a
crash before the switch, a crash before the source is cleaned, the record changing meanwhile). The
container class end to end: tests/e2e/test_node_drain.py."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import ActionNotSupported, InvalidState, RuntimeFailure
from shells.domain.states import ShellState
from shells.objects.store import S3Location, S3Objects
from shells.sdk import AsyncShells
from shells.store.moves import MoveStore
from tests.support.s3 import S3Server

from ..support.fake_node import FakeNode
from ..support.inprocess import Instance, serving_control
from ..support.remote_node import fake_cluster
from ..support.waiting import eventually
from .test_node_durable import _blobs

pytestmark = pytest.mark.anyio
_buckets = itertools.count()
NAMES = ("node-a", "node-b")


@pytest.fixture
async def bucket_url(s3: S3Server) -> str:
    url = s3.url(f"relocate{next(_buckets)}", prefix="instance")
    objects = S3Objects(S3Location.parse(url))
    await objects.create_bucket()
    await objects.aclose()
    return url


@pytest.fixture
async def cluster(tmp_path: Path, bucket_url: str) -> AsyncIterator[tuple[Instance, dict[str, FakeNode]]]:
    with fake_cluster(tmp_path / "nodes", bucket_url, NAMES) as (fakes, settings):
        async with serving_control(tmp_path / "control", fakes[0], **settings) as instance:
            yield instance, dict(zip(NAMES, fakes, strict=True))


def node_of(instance: Instance, shell_id: str) -> str:
    shell = instance.control.ctx.store.get_shell(shell_id)
    assert shell is not None
    return shell.node


def other(name: str) -> str:
    return NAMES[name == NAMES[0]]


async def test_drain_moves_paused_and_stopped_shells_and_leaves_running_ones(
    cluster: tuple[Instance, dict[str, FakeNode]], bucket_url: str
) -> None:
    instance, fakes = cluster
    async with instance.client() as admin:
        shells = [await admin.create() for _ in range(4)]  # placed in turn: two on each node
        here = [s for s in shells if node_of(instance, s.id) == "node-a"]
        assert len(here) == 2
        paused, stopped = here
        await paused.files.write("/workspace/kept.txt", b"paused on a")
        await paused.pause()
        await stopped.files.write("/workspace/kept.txt", b"stopped on a")
        await stopped.stop()
        running = await admin.create()  # one more, on node-a by turn, and left running
        assert node_of(instance, running.id) == "node-a"

        report = await admin.nodes.drain("node-a")
        assert report.cordoned and report.node == "node-a"
        assert {m["shell"]: m["to"] for m in report.moved} == {paused.id: "node-b", stopped.id: "node-b"}
        assert [x["shell"] for x in report.left] == [running.id]
        assert "only paused and stopped shells move" in report.left[0]["reason"]

        for shell, state in ((paused, "paused"), (stopped, "stopped")):
            info = await shell.refresh()
            assert (info.state, info.node) == (state, "node-b")
            assert not fakes["node-a"].shell_dir(shell.id).exists()  # the source keeps nothing
            assert fakes["node-b"].shell_dir(shell.id).exists()
        assert (fakes["node-b"].shell_dir(paused.id) / "paused").exists()
        assert (fakes["node-b"].shell_dir(stopped.id) / "stopped").exists()
        assert not list((fakes["node-b"].root / "snapshots").iterdir())  # the fetched copy is gone

        async def two_blobs() -> bool:  # each shell's saved state, kept for a later loss; no other
            return len(await _blobs(bucket_url)) == 2

        await eventually(two_blobs, what="the saved states alone in the object store")

        await paused.resume()
        assert await paused.files.read("/workspace/kept.txt") == b"paused on a"
        await stopped.start()
        assert await stopped.files.read("/workspace/kept.txt") == b"stopped on a"
        events = [e for e in await admin.audit(shell=stopped.id) if e.action == "move"]
        assert events and events[0].details == {"from": "node-a", "to": "node-b"}

        # cordoned: new shells go to node-b only, until it is uncordoned
        placed = {node_of(instance, (await admin.create()).id) for _ in range(3)}
        assert placed == {"node-b"}
        assert await admin.nodes.uncordon("node-a")
        placed = {node_of(instance, (await admin.create()).id) for _ in range(2)}
        assert "node-a" in placed  # placed on again (the emptier node, by placement's room rule)
        assert not await admin.nodes.uncordon("node-a")  # it was not cordoned any more


async def test_a_node_that_does_not_exist_and_a_caller_who_is_no_platform_admin_are_refused(
    cluster: tuple[Instance, dict[str, FakeNode]],
) -> None:
    instance, _ = cluster
    async with instance.http() as http:
        r = await http.post("/v1/admin/nodes/nowhere/drain")
        assert r.status_code == 400 and "node-a, node-b" in r.json()["error"]["message"]
        r = await http.post("/v1/admin/nodes/nowhere/uncordon")
        assert r.status_code == 400
        token = (await http.post("/v1/tokens", json={"scopes": ["shells.read", "shells.act"]})).json()
    async with instance.http(token["token"]) as http:
        r = await http.post("/v1/admin/nodes/node-a/drain")
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert MoveStore(instance.control.ctx.store).cordoned() == set()


async def stopped_shell(admin: AsyncShells, instance: Instance, text: bytes) -> tuple[Any, str]:
    shell = await admin.create()
    await shell.files.write("/workspace/kept.txt", text)
    await shell.stop()
    return shell, node_of(instance, shell.id)


async def test_a_target_that_fails_leaves_the_shell_where_it_was_and_the_target_empty(
    cluster: tuple[Instance, dict[str, FakeNode]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, fakes = cluster
    async with instance.client() as admin:
        shell, source = await stopped_shell(admin, instance, b"stays")
        target = fakes[other(source)]

        async def broken_create(spec: Any) -> None:
            target.shell_dir(spec.host_id).mkdir(parents=True)  # half made, then the node fails
            raise RuntimeFailure("the target's disk is full")

        monkeypatch.setattr(target, "create", broken_create)
        report = await admin.nodes.drain(source)
        assert report.moved == [] and "disk is full" in report.left[0]["reason"]
        assert node_of(instance, shell.id) == source
        assert not target.shell_dir(shell.id).exists()  # nothing of it stays on the target
        save = MoveStore(instance.control.ctx.store).get(shell.id)
        assert save is not None and save.moving_to is None and save.left_on is None
        await admin.nodes.uncordon(source)
        await shell.start()  # usable where the record says, with its files
        assert await shell.files.read("/workspace/kept.txt") == b"stays"


async def test_a_crash_before_the_switch_leaves_a_copy_that_settle_removes(
    cluster: tuple[Instance, dict[str, FakeNode]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, fakes = cluster
    relocation = instance.control.relocation
    async with instance.client() as admin:
        shell, source = await stopped_shell(admin, instance, b"before the switch")
        target = other(source)

        def crash(*_: object, **__: object) -> None:
            raise SystemExit("the control plane died here")

        with monkeypatch.context() as patched:
            patched.setattr(relocation.moves, "switch", crash)
            patched.setattr(relocation, "_discard", _no_discard)  # a dead process cleans nothing
            with pytest.raises(SystemExit):
                await relocation.move(None, shell.id, "test")
        assert fakes[target].shell_dir(shell.id).exists()  # a copy the record does not own
        assert node_of(instance, shell.id) == source  # the record still says the source
        save = MoveStore(instance.control.ctx.store).get(shell.id)
        assert save is not None and save.moving_to == target

        await relocation.settle()  # what the next start does
        assert not fakes[target].shell_dir(shell.id).exists()
        assert fakes[source].shell_dir(shell.id).exists()
        save = MoveStore(instance.control.ctx.store).get(shell.id)
        assert save is not None and (save.moving_to, save.left_on) == (None, None)
        await shell.start()
        assert await shell.files.read("/workspace/kept.txt") == b"before the switch"


async def _no_discard(*_: object, **__: object) -> None:
    return None


async def test_a_crash_after_the_switch_leaves_the_source_copy_for_settle(
    cluster: tuple[Instance, dict[str, FakeNode]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, fakes = cluster
    relocation = instance.control.relocation
    async with instance.client() as admin:
        shell, source = await stopped_shell(admin, instance, b"after the switch")
        target = other(source)
        with monkeypatch.context() as patched:
            patched.setattr(relocation, "_discard", _no_discard)
            moved = await relocation.move(None, shell.id, "test")
        assert moved.node == target
        assert fakes[source].shell_dir(shell.id).exists()  # not cleaned: the process "died"
        save = MoveStore(instance.control.ctx.store).get(shell.id)
        assert save is not None and save.left_on == source

        await shell.start()  # the record says the target: it answers there, from its files
        assert await shell.files.read("/workspace/kept.txt") == b"after the switch"
        await relocation.settle()
        assert not fakes[source].shell_dir(shell.id).exists()
        assert fakes[target].shell_dir(shell.id).exists()  # settle never touches the owner's copy
        save = MoveStore(instance.control.ctx.store).get(shell.id)
        assert save is not None and save.left_on is None


async def test_a_shell_that_changes_during_the_move_stays_where_it_is(
    cluster: tuple[Instance, dict[str, FakeNode]], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, fakes = cluster
    relocation = instance.control.relocation
    ctx = instance.control.ctx
    async with instance.client() as admin:
        shell, source = await stopped_shell(admin, instance, b"started elsewhere")
        target = other(source)
        fleet = ctx.fleet
        assert fleet is not None
        carrier = fleet.carrier(target)
        fetch = carrier.get_snapshot

        async def started_meanwhile(*args: Any) -> None:  # another replica starts it mid-move
            await fetch(*args)
            draft = ctx.draft(None, ctx.store.get_shell(shell.id), kind="action", action="start")
            ctx.store.change_state(shell.id, ShellState.RUNNING, "", draft)

        monkeypatch.setattr(carrier, "get_snapshot", started_meanwhile)
        with pytest.raises(InvalidState, match="changed while it was being moved"):
            await relocation.move(None, shell.id, "test")
        assert node_of(instance, shell.id) == source
        assert not fakes[target].shell_dir(shell.id).exists()


async def test_a_lost_shell_starts_again_on_another_node_from_the_object_store(
    cluster: tuple[Instance, dict[str, FakeNode]],
) -> None:
    instance, fakes = cluster
    ctx = instance.control.ctx
    async with instance.client() as admin:
        shell = await admin.create()
        lost_on = node_of(instance, shell.id)
        await shell.files.write("/workspace/kept.txt", b"snapshotted")
        await shell.snapshot()
        nothing = await admin.create()
        if node_of(instance, nothing.id) != lost_on:
            nothing = await admin.create()

        async def durable() -> bool:
            [snap] = await admin.snapshots.list(shell.id)
            return snap.durable

        await eventually(durable, what="the snapshot to be durable")
        await shell.files.write("/workspace/later.txt", b"after the snapshot: lost with the node")
        for lost in (shell.id, nothing.id):  # the node is gone: what node loss records
            draft = ctx.draft(None, ctx.store.get_shell(lost), kind="state", action="lost")
            ctx.store.change_state(lost, ShellState.LOST, f"node {lost_on} is gone", draft)

        info = await shell.recover()
        assert info.state == "stopped" and info.node == other(lost_on)
        assert "from snapshot" in info.state_reason
        await shell.start()
        assert await shell.files.read("/workspace/kept.txt") == b"snapshotted"
        assert not await shell.files.exists("/workspace/later.txt")

        with pytest.raises(InvalidState, match="nothing of it is in the object store"):
            await nothing.recover()
        with pytest.raises(InvalidState, match="not lost"):
            await shell.recover()
        assert fakes[other(lost_on)].shell_dir(shell.id).exists()


async def test_one_box_has_nowhere_to_move_to(admin: AsyncShells, instance: Instance) -> None:
    shell = await admin.create()
    await shell.stop()
    with pytest.raises(ActionNotSupported, match="one machine"):
        await instance.control.relocation.move(None, shell.id, "test")
    report = await admin.nodes.drain("local")
    assert report.left and "one machine" in report.left[0]["reason"]
    await admin.nodes.uncordon("local")


async def test_a_paused_shell_is_saved_when_it_pauses_and_recovered_paused(
    cluster: tuple[Instance, dict[str, FakeNode]],
) -> None:
    instance, fakes = cluster
    ctx = instance.control.ctx
    moves = MoveStore(ctx.store)
    async with instance.client() as admin:
        shell = await admin.create()
        lost_on = node_of(instance, shell.id)
        await shell.files.write("/workspace/kept.txt", b"paused, then the node died")
        await shell.pause()

        async def saved() -> bool:
            save = moves.get(shell.id)
            return save is not None and save.state is ShellState.PAUSED

        await eventually(saved, what="the paused state to be saved")
        draft = ctx.draft(None, ctx.store.get_shell(shell.id), kind="state", action="lost")
        ctx.store.change_state(shell.id, ShellState.LOST, f"node {lost_on} is gone", draft)

        info = await shell.recover()
        assert (info.state, info.node) == ("paused", other(lost_on))
        assert "its paused state saved on node" in info.state_reason
        assert (fakes[other(lost_on)].shell_dir(shell.id) / "paused").exists()
        await shell.resume()
        assert await shell.files.read("/workspace/kept.txt") == b"paused, then the node died"
