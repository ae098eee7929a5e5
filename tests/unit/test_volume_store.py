"""The object-store side of volumes (control/volume_store.py) on a real record and a real local
object store, with the host's copies as plain directories packed by the same tar as the pool's (the
btrfs side runs end to end in tests/e2e/test_volumes_portable.py): an upload the store refuses is
on the audit trail once and retried until it is durable; a new version replaces the blob of the
one before; a machine without the copy restores it; a writer that started during an upload keeps
the copy dirty; a writer let go just as the upload task ends is uploaded too."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest

from shells.control.context import ControlContext
from shells.control.volume_store import VolumeHost, VolumeStore
from shells.domain.audit import AuditQuery
from shells.domain.shell import EventRecord
from shells.node.volume_copies import LocalVolumeCarrier
from shells.objects.store import BLOBS, LocalObjects, ObjectInfo, ObjectStore, Unreachable
from shells.runtime.images import pack_command, unpack_command
from shells.runtime.volumes import PACKED, PoolVolumes
from shells.settings import Settings
from shells.store.repository import EventDraft, Store
from shells.store.storage import StorageStore, VolumeRecord

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DirVolumes(PoolVolumes):
    """The pool's volumes with plain directories for subvolumes (the marks are the real ones)."""

    def __init__(self, root: Path) -> None:
        self.pool = SimpleNamespace(mount_dir=root)  # type: ignore[assignment]

    async def create(self, volume_id: str, size_bytes: int) -> None:
        self.source(volume_id).mkdir(parents=True)

    async def delete(self, volume_id: str) -> None:
        shutil.rmtree(self.source(volume_id), ignore_errors=True)

    def has(self, volume_id: str) -> bool:
        return self.source(volume_id).is_dir()

    async def export(self, volume_id: str, dest: Path) -> Path:
        subprocess.run(pack_command(self.source(volume_id), dest / PACKED), check=True)
        return dest / PACKED

    async def restore(self, volume_id: str, size_bytes: int, tarball: Path, version: int) -> None:
        await self.delete(volume_id)
        self.source(volume_id).mkdir(parents=True)
        subprocess.run(unpack_command(tarball, self.source(volume_id)), check=True)
        self.set_local_version(volume_id, version)


class FlakyObjects(LocalObjects):
    """A local object store whose puts fail while ``down``."""

    down = False

    async def put(self, key: str, path: Path) -> ObjectInfo:
        if self.down:
            raise Unreachable("connection refused")
        return await super().put(key, path)


def machines(objects: ObjectStore, scratch: Path, **copies: DirVolumes) -> dict[str, VolumeHost]:
    """Machines by node name, each with its copies and a carrier to ``objects``."""
    return {name: VolumeHost(c, LocalVolumeCarrier(c, objects, scratch)) for name, c in copies.items()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'record.db'}")
    s.migrate()
    yield s
    s.close()


def uploads(store: Store) -> list[EventRecord]:
    """The volume upload failures on the audit trail."""
    return store.list_events(tenant="default", shell_id=None, query=AuditQuery(action="volume.upload"))


async def until(check: object, timeout_s: float = 20.0) -> None:
    with anyio.fail_after(timeout_s):
        while not check():  # type: ignore[operator]
            await anyio.sleep(0.05)


async def test_uploads_are_retried_audited_versioned_and_restored(store: Store, tmp_path: Path) -> None:
    ctx = ControlContext(Settings(data_dir=tmp_path / "data"), store, {})
    objects = FlakyObjects(tmp_path / "objects")
    here = DirVolumes(tmp_path / "a")
    hosts = machines(objects, tmp_path / "durable", a=here)
    kept = VolumeStore(ctx, lambda: hosts, objects)
    records = StorageStore(store)
    rec = VolumeRecord("vol_1", "default", "results", 1, datetime.now(UTC))
    made = EventDraft(tenant="default", shell_id=None, principal="t", door="test", kind="volume", action="t")
    records.add_volume(rec, made)

    await kept.ensure_on("a", rec)  # never uploaded: made empty here
    (here.source(rec.id) / "a.txt").write_text("first")
    kept.writing("a", rec.id)
    objects.down = True
    kept.released("a", [rec.id])
    await until(lambda: uploads(store))
    [failed] = uploads(store)
    assert failed.outcome == "object_store_unavailable" and failed.target == rec.id
    assert records.volume_by_id(rec.id).durable_at is None  # type: ignore[union-attr]
    objects.down = False  # the store returns: the retry makes it durable
    await until(lambda: records.volume_by_id(rec.id).durable_at is not None)  # type: ignore[union-attr]
    first = records.volume_by_id(rec.id)
    assert first is not None and first.version == 1 and here.dirty_token(rec.id) is None
    assert len(uploads(store)) == 1

    # A second writer: a new version, and the blob of the first is removed.
    (here.source(rec.id) / "b.txt").write_text("second")
    kept.writing("a", rec.id)
    kept.released("a", [rec.id])
    await until(lambda: records.volume_by_id(rec.id).version == 2)  # type: ignore[union-attr]
    second = records.volume_by_id(rec.id)
    assert second is not None and second.blob != first.blob
    assert len(await objects.list(BLOBS)) == 1

    # Another machine (no copy) restores the newest version; one with an older copy replaces it.
    there = DirVolumes(tmp_path / "b")
    elsewhere = machines(objects, tmp_path / "durable", b=there)
    await VolumeStore(ctx, lambda: elsewhere, objects).ensure_on("b", second)
    assert sorted(p.name for p in there.source(rec.id).iterdir()) == ["a.txt", "b.txt"]
    assert there.local_version(rec.id) == 2
    await kept.collect(None)  # nothing to collect: a no-op


async def test_a_writer_that_starts_during_an_upload_keeps_the_copy_dirty(
    store: Store, tmp_path: Path
) -> None:
    here = DirVolumes(tmp_path / "a")
    await here.create("vol_2", 1)
    here.mark_dirty("vol_2")
    token = here.dirty_token("vol_2")
    assert token is not None
    here.mark_dirty("vol_2")  # a new writer started meanwhile
    here.clear_dirty("vol_2", token)
    assert here.dirty_token("vol_2") is not None
    here.clear_dirty("vol_2", here.dirty_token("vol_2") or "")
    assert here.dirty_token("vol_2") is None


class ReleasedWhileLooking(DirVolumes):
    """Copies whose first clean answer races a new writer: while the upload task's check runs (in
    its worker thread), a writer starts and is let go on the event loop, and the check's answer,
    taken before, says clean."""

    kept: VolumeStore
    raced = False

    def dirty_token(self, volume_id: str) -> str | None:
        token = super().dirty_token(volume_id)
        if token is None and not self.raced:
            self.raced = True
            (self.source(volume_id) / "late.txt").write_text("late")
            anyio.from_thread.run_sync(self.writer_comes_and_goes, volume_id)
        return token

    def writer_comes_and_goes(self, volume_id: str) -> None:
        self.kept.writing("a", volume_id)
        self.kept.released("a", [volume_id])


async def test_a_release_while_the_upload_task_ends_is_still_uploaded(store: Store, tmp_path: Path) -> None:
    ctx = ControlContext(Settings(data_dir=tmp_path / "data"), store, {})
    objects = LocalObjects(tmp_path / "objects")
    here = ReleasedWhileLooking(tmp_path / "a")
    kept = here.kept = VolumeStore(ctx, lambda: machines(objects, tmp_path / "durable", a=here), objects)
    records = StorageStore(store)
    rec = VolumeRecord("vol_3", "default", "results", 1, datetime.now(UTC))
    made = EventDraft(tenant="default", shell_id=None, principal="t", door="test", kind="volume", action="t")
    records.add_volume(rec, made)
    await kept.ensure_on("a", rec)
    (here.source(rec.id) / "a.txt").write_text("first")
    kept.writing("a", rec.id)
    kept.released("a", [rec.id])  # uploads version 1, then finds the copy clean as a writer returns

    await until(lambda: records.volume_by_id(rec.id).version == 2)  # type: ignore[union-attr]
    assert here.raced and here.dirty_token(rec.id) is None


async def test_a_copy_left_dirty_on_one_node_is_stored_before_another_node_attaches_it(
    store: Store, tmp_path: Path
) -> None:
    """The writer on node a let the volume go, its upload not done yet: attaching it on node b
    stores a's copy first, so b reads the last writer's files; deleting it removes both copies."""
    ctx = ControlContext(Settings(data_dir=tmp_path / "data"), store, {})
    objects = LocalObjects(tmp_path / "objects")
    a, b = DirVolumes(tmp_path / "a"), DirVolumes(tmp_path / "b")
    kept = VolumeStore(ctx, lambda: machines(objects, tmp_path / "durable", a=a, b=b), objects)
    records = StorageStore(store)
    rec = VolumeRecord("vol_3", "default", "shared", 1, datetime.now(UTC))
    made = EventDraft(tenant="default", shell_id=None, principal="t", door="test", kind="volume", action="t")
    records.add_volume(rec, made)
    await kept.ensure_on("a", rec)
    kept.writing("a", rec.id)
    (a.source(rec.id) / "out.txt").write_text("written on a")
    assert a.dirty() == [rec.id] and b.dirty() == []

    await kept.ensure_on("b", rec)  # no release, no sweep: the attach itself stores a's copy
    assert (b.source(rec.id) / "out.txt").read_text() == "written on a"
    stored = records.volume_by_id(rec.id)
    assert stored is not None and stored.version == 1 and a.dirty() == []
    assert a.local_version(rec.id) == b.local_version(rec.id) == 1

    records.delete_volume(rec.id, made)
    await kept.remove(stored)
    assert not a.has(rec.id) and not b.has(rec.id)
    assert await objects.list(BLOBS) == []
