"""A shell made from a snapshot on a cluster goes where the snapshot is: the node that holds it when
that node can take the shell, else another node of the region that fetches the durable snapshot from
the object store; a snapshot no node that can take the shell holds, and not durable, is a typed 409
with nothing made; a node that cannot load the snapshot (a microvm node of another machine: here a
fake node with another ``machine``) is passed over. Three fake nodes, each behind a real node agent
with its own connection to a real S3 server (SeaweedFS). The container class on the real local
cluster: tests/e2e/test_cluster_snapshot_placement.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from shells.domain.errors import SnapshotNotPlaceable
from shells.domain.nodes import NodeOffer
from shells.domain.shell import SnapshotRecord
from shells.sdk import AsyncShell, AsyncShells, Snapshot

from ..support.fake_node import FakeNode
from ..support.inprocess import Instance, serving_control
from ..support.remote_node import fake_cluster
from ..support.waiting import eventually
from .test_node_relocate import bucket_url, node_of  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio
NAMES = ("node-a", "node-b", "node-c")
Cluster = tuple[Instance, dict[str, FakeNode]]


@pytest.fixture
async def cluster(tmp_path: Path, bucket_url: str) -> AsyncIterator[Cluster]:  # noqa: F811
    with fake_cluster(tmp_path / "nodes", bucket_url, NAMES) as (fakes, settings):
        async with serving_control(tmp_path / "control", fakes[0], **settings) as instance:
            yield instance, dict(zip(NAMES, fakes, strict=True))


def measured_as(instance: Instance, change: Callable[[NodeOffer], NodeOffer]) -> None:
    """From now on placement sees each node's offer through ``change`` (the nodes stay up and open)."""
    measured = instance.control.ctx.nodes
    assert measured is not None
    instance.control.ctx.nodes = lambda: [change(o) for o in measured()]


def roomless(instance: Instance, *full: str) -> None:
    """The nodes ``full`` offer no memory."""
    measured_as(instance, lambda o: replace(o, memory_free_mib=0) if o.name in full else o)


def ranked_first(instance: Instance, first: str) -> None:
    """``first`` has more memory free than any other node (placement spreads by it)."""

    def roomier(o: NodeOffer) -> NodeOffer:
        return replace(o, memory_free_mib=2 * o.memory_free_mib) if o.name == first else o

    measured_as(instance, roomier)


async def stored(admin: AsyncShells, snap: Snapshot) -> None:
    async def durable() -> bool:
        return any(s.durable for s in await admin.snapshots.list() if s.id == snap.id)

    await eventually(durable, what="the snapshot to be durable")


async def snapshot_on(
    admin: AsyncShells, instance: Instance, text: bytes, *, durable: bool
) -> tuple[str, Snapshot]:
    shell = await admin.create()
    await shell.files.write("/workspace/kept.txt", text)
    snap = await shell.snapshot()
    if durable:
        await stored(admin, snap)
    return node_of(instance, shell.id), snap


async def made_from(admin: AsyncShells, snap: Snapshot) -> AsyncShell:
    return await admin.create(snapshot=snap.id)


async def test_the_node_holding_the_snapshot_is_preferred_while_it_has_room(cluster: Cluster) -> None:
    instance, fakes = cluster
    async with instance.client() as admin:
        holder, snap = await snapshot_on(admin, instance, b"from the holder", durable=True)
        others = [n for n in NAMES if n != holder]
        ranked_first(instance, others[0])  # placement alone would choose another node each time
        for _ in range(3):
            copy = await made_from(admin, snap)
            assert node_of(instance, copy.id) == holder
            assert await copy.files.read("/workspace/kept.txt") == b"from the holder"
        for name in others:  # nothing was fetched anywhere else
            assert not (fakes[name].root / "snapshots" / snap.id).exists()
        plain = await admin.create()  # a shell from no snapshot is placed as before
        assert node_of(instance, plain.id) == others[0]


async def test_a_durable_snapshot_whose_holder_is_full_or_drained_starts_on_another_node(
    cluster: Cluster,
) -> None:
    instance, fakes = cluster
    async with instance.client() as admin:
        holder, snap = await snapshot_on(admin, instance, b"fetched", durable=True)
        roomless(instance, holder)
        copy = await made_from(admin, snap)
        fetcher = node_of(instance, copy.id)
        assert fetcher != holder
        assert await copy.files.read("/workspace/kept.txt") == b"fetched"
        assert (fakes[fetcher].root / "snapshots" / snap.id).exists()  # kept for the next create

        again = await made_from(admin, snap)  # that node holds it now: preferred over the third
        assert node_of(instance, again.id) == fetcher

        await admin.snapshots.delete(snap.id)  # gone from every node that held it
        for fake in fakes.values():
            assert not (fake.root / "snapshots" / snap.id).exists()


async def test_a_snapshot_only_its_cordoned_holder_has_is_refused_with_a_typed_error(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, _ = cluster
    monkeypatch.setattr(instance.control.durable, "upload_snapshot_later", lambda snap: None)
    async with instance.client() as admin:
        holder, snap = await snapshot_on(admin, instance, b"not durable", durable=False)
        before = {s.id for s in await admin.list()}
        await admin.nodes.drain(holder)
        async with instance.http() as http:
            answer = await http.post("/v1/shells", json={"snapshot": snap.id})
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["code"] == "snapshot_not_placeable"
        assert holder in error["message"] and "durable" in error["message"]
        assert error["details"]["nodes"] == [holder]
        with pytest.raises(SnapshotNotPlaceable):
            await made_from(admin, snap)
        assert {s.id for s in await admin.list()} == before  # nothing half-made
        await admin.nodes.uncordon(holder)
        copy = await made_from(admin, snap)
        assert node_of(instance, copy.id) == holder
        assert await copy.files.read("/workspace/kept.txt") == b"not durable"


async def test_a_node_that_cannot_load_the_snapshot_is_passed_over(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, fakes = cluster
    for name, machine in zip(NAMES, ("m1", "m2", "m1"), strict=True):
        fakes[name].machine = machine  # node-b's VMs run on another machine than a's and c's
    async with instance.client() as admin:
        shell = await admin.create()
        while node_of(instance, shell.id) != "node-a":
            shell = await admin.create()
        await shell.files.write("/workspace/kept.txt", b"machine m1")
        snap = await shell.snapshot()
        await stored(admin, snap)
        roomless(instance, "node-a")
        ranked_first(instance, "node-b")  # tried first, refuses
        copy = await made_from(admin, snap)
        assert node_of(instance, copy.id) == "node-c"
        assert await copy.files.read("/workspace/kept.txt") == b"machine m1"
        assert not (fakes["node-b"].root / "snapshots" / snap.id).exists()

        fetches: list[str | None] = []
        fetch = instance.control.durable.ensure_snapshot_here

        async def counted(snapshot: SnapshotRecord, node: str | None = None) -> None:
            fetches.append(node)
            await fetch(snapshot, node)

        monkeypatch.setattr(instance.control.durable, "ensure_snapshot_here", counted)
        roomless(instance, "node-a", "node-c")  # only node-b has room, and it cannot load it
        with pytest.raises(SnapshotNotPlaceable) as refused:
            await made_from(admin, snap)
        assert "node-b" in refused.value.message and "machine" in refused.value.message
        assert refused.value.details["refused"] == ["node-b"]
        assert fetches == []  # its refusal is remembered: the parts are not fetched there again
