"""Snapshots in the object store (docs/storage.md): the durable layer of an instance.

A snapshot is taken on the machine of its shell, as before; then, in the background, its backend
packs it into files, each file goes to the object store as a blob named by its SHA-256, and the
record says when all of it is there (``durable_at``) and which blobs hold it. Uploads run a few at
a time and are retried with growing waits until they succeed or the snapshot is deleted; a server
that stops mid-upload starts it again at its next start. A machine asked to start a shell from a
snapshot it does not hold fetches the blobs (each checked against its digest on arrival) and lets
its backend rebuild the snapshot first. Deleting a snapshot removes every blob no kept snapshot
still names."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import defaultdict
from pathlib import Path

import anyio

from ..domain import limits
from ..domain.errors import ActionNotSupported, InvalidState, ObjectStoreUnavailable, RuntimeFailure
from ..domain.principal import Principal, Scope
from ..domain.shell import SnapshotRecord, StoredPart
from ..objects.store import ObjectStore, ObjectStoreError, blob_key, get_blob, put_blob
from .auth import find_snapshot, require
from .context import ControlContext

log = logging.getLogger(__name__)


class DurableSnapshots:
    def __init__(self, ctx: ControlContext, objects: ObjectStore) -> None:
        self.ctx = ctx
        self.objects = objects
        self.scratch = ctx.settings.data_dir / "durable"
        self._slots = asyncio.Semaphore(limits.DURABLE_UPLOADS)
        self._fetching: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._uploading: set[str] = set()
        """Digests of blobs being stored now, not yet in the record: never collected meanwhile."""

    async def check(self) -> None:
        """That the store answers to these credentials: a wrong URL stops the start with the reason."""
        try:
            await self.objects.check()
        except ObjectStoreError as exc:
            raise ObjectStoreUnavailable(
                f"The object store (SHELLS_OBJECT_STORE) cannot be used: {exc}"
            ) from None

    async def start(self) -> None:
        """Upload every snapshot this machine holds that is not durable yet (a stop cut its upload
        short)."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        for runtime, backend in self.ctx.backends.items():
            here = (await backend.inventory()).snapshots
            for snap in self.ctx.store.list_snapshots(None):
                if snap.runtime is runtime and snap.durable_at is None and snap.id in here:
                    self.upload_later(snap)

    async def close(self) -> None:
        await self.objects.aclose()

    def upload_later(self, snap: SnapshotRecord) -> None:
        """Start keeping ``snap`` in the object store, in the background."""
        self.ctx.background.run(f"durable-{snap.id}", lambda: self._upload_until_done(snap))

    async def _upload_until_done(self, snap: SnapshotRecord) -> None:
        wait = limits.DURABLE_RETRY_FIRST_S
        while self.ctx.store.get_snapshot(snap.id) is not None:
            try:
                async with self._slots:
                    await self._upload(snap)
                return
            except ActionNotSupported as exc:
                log.info("snapshot %s stays on this machine only: %s", snap.id, exc)
                return
            except (ObjectStoreError, RuntimeFailure, OSError) as exc:
                log.warning("snapshot %s is not durable yet (%s); trying again in %.0f s", snap.id, exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, limits.DURABLE_RETRY_MAX_S)

    async def _upload(self, snap: SnapshotRecord) -> None:
        work = self.scratch / f"up-{snap.id}"
        await anyio.to_thread.run_sync(_fresh_dir, work)
        stored: list[StoredPart] = []
        try:
            files = await self.ctx.backend(snap.runtime).export_snapshot(snap.id, work)
            for name, path in sorted(files.items()):
                size = path.stat().st_size
                digest = await put_blob(self.objects, path, on_digest=self._uploading.add)
                stored.append(StoredPart(name, digest, size))
            if self.ctx.store.mark_snapshot_durable(snap.id, stored) is None:  # deleted meanwhile
                await self._collect(stored)
            else:
                log.info("snapshot %s is durable (%d bytes)", snap.id, sum(p.size for p in stored))
        finally:
            self._uploading.difference_update(p.sha256 for p in stored)
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def ensure_here(self, snap: SnapshotRecord) -> None:
        """Make ``snap`` present on this machine before a shell starts from it: fetched from the
        object store when another machine took it."""
        backend = self.ctx.backend(snap.runtime)
        async with self._fetching[snap.id]:
            if snap.id in (await backend.inventory()).snapshots:
                return
            if snap.durable_at is None:
                raise InvalidState(
                    f"Snapshot '{snap.id}' is on another machine and not yet in the object store; "
                    "create from it there, or again once it shows 'durable': true."
                )
            work = self.scratch / f"down-{snap.id}"
            await anyio.to_thread.run_sync(_fresh_dir, work)
            try:
                files = {p.name: work / p.name for p in snap.parts}
                for part in snap.parts:
                    await get_blob(self.objects, part.sha256, files[part.name])
                await backend.import_snapshot(snap.id, files)
            except ObjectStoreError as exc:
                raise ObjectStoreUnavailable(
                    f"Snapshot '{snap.id}' could not be fetched from the object store: {exc}"
                ) from None
            finally:
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def delete(self, principal: Principal, snapshot_id: str) -> None:
        """Delete the snapshot here and every blob of it no kept snapshot names. Shells made from it
        are unaffected (they hold copies of its files)."""
        require(principal, Scope.DESTROY)
        snap = find_snapshot(self.ctx.store, principal, snapshot_id)
        await self.ctx.backend(snap.runtime).delete_snapshot(snap.id)
        self.ctx.store.mark_snapshot_deleted(snap.id)
        self.ctx.store.add_event(
            self.ctx.draft(
                principal, None, kind="snapshot", action="delete", target=snap.id,
                tenant=snap.tenant, details={"snapshot": snap.id, "shell_id": snap.shell_id},
            )
        )  # fmt: skip
        await self._collect(snap.parts)

    async def _collect(self, parts: tuple[StoredPart, ...] | list[StoredPart]) -> None:
        in_use = self.ctx.store.blobs_in_use() | self._uploading
        for part in parts:
            if part.sha256 in in_use:
                continue
            try:
                await self.objects.delete(blob_key(part.sha256))
            except ObjectStoreError as exc:  # an orphan blob costs storage, nothing else
                log.warning("blob %s of a deleted snapshot stays in the object store: %s", part.sha256, exc)


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
