"""Volumes kept in the object store (docs/storage.md, "Volumes follow their shells"), so a volume
can be attached on a machine that never held it.

When a volume is let go by a writer (its shell stopped, deleted, or gone), the machine that holds
it packs its files from a read-only snapshot into one ``.tar.zst``, stores it as a content-addressed
blob and records the blob with a new version and ``durable_at``. A create that attaches a volume on
a machine whose copy is missing or older than the record fetches the blob (checked against its
digest) and restores it before the shell starts. One writer at a time (``Storage.claim``) is what
keeps this simple: the writer's machine holds the newest copy, and readers attach the last version.

Uploads run in the background, one per volume at a time, retried with growing waits; a sweep every
``VOLUME_SWEEP_S`` (and each start) uploads any copy still marked dirty with no writer running, so a
crash between a shell's end and its upload loses nothing kept on this machine's disk."""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from collections import defaultdict
from pathlib import Path

import anyio

from ..domain import limits
from ..domain.errors import ObjectStoreUnavailable, RuntimeFailure
from ..domain.states import ShellState
from ..objects.store import ObjectStore, ObjectStoreError, blob_key, get_blob, put_blob
from ..runtime.volumes import HostVolumes
from ..store.storage import StorageStore, VolumeRecord
from ..store.templates import TemplateStore
from .context import ControlContext

log = logging.getLogger(__name__)
WRITING = (ShellState.CREATING, ShellState.RUNNING, ShellState.PAUSED)
"""States of a read-write holder whose writes may still change the volume."""


class VolumeStore:
    def __init__(self, ctx: ControlContext, host: HostVolumes, objects: ObjectStore) -> None:
        self.ctx, self.host, self.objects = ctx, host, objects
        self.records = StorageStore(ctx.store)
        self.templates = TemplateStore(ctx.store)
        self.scratch = ctx.settings.data_dir / "durable"
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def start(self) -> None:
        self.ctx.background.every("volume-uploads", limits.VOLUME_SWEEP_S, self._sweep)

    # fetch ----------------------------------------------------------------------------------------
    async def ensure_here(self, rec: VolumeRecord) -> None:
        """This machine holds the volume's newest copy: fetched from the object store when it is
        missing or older than the record, made empty when it was never stored anywhere."""
        async with self._locks[rec.id]:
            if self.host.has(rec.id) and self.host.local_version(rec.id) >= rec.version:
                return
            if rec.blob is None:  # never uploaded: nothing was ever written to it
                if not self.host.has(rec.id):
                    await self.host.create(rec.id, rec.size_gib * 1024**3)
                return
            work = self.scratch / f"down-{rec.id}"
            await anyio.to_thread.run_sync(_fresh_dir, work)
            try:
                await get_blob(self.objects, rec.blob, work / "volume.tar.zst")
                await self.host.restore(rec.id, rec.size_gib * 1024**3, work / "volume.tar.zst", rec.version)
            except ObjectStoreError as exc:
                raise ObjectStoreUnavailable(
                    f"Volume {rec.name!r} could not be fetched from the object store: {exc}"
                ) from None
            finally:
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
            log.info("volume %s fetched from the object store (version %d)", rec.id, rec.version)

    # upload ---------------------------------------------------------------------------------------
    def writing(self, volume_id: str) -> None:
        """A read-write holder starts: the copy must be uploaded once it is let go."""
        self.host.mark_dirty(volume_id)

    def released(self, volume_ids: list[str]) -> None:
        """Their writer stopped or went away: upload each in the background."""
        for vid in volume_ids:
            if self.host.dirty_token(vid) is not None:
                self.ctx.background.run(f"volume-upload-{vid}", functools.partial(self._until_clean, vid))

    async def _sweep(self) -> None:
        for rec in self.records.volumes(None):
            if self.host.dirty_token(rec.id) is not None and not self._written_now(rec.id):
                self.released([rec.id])

    def _written_now(self, volume_id: str) -> bool:
        """Whether a read-write holder may still be writing it (then its release uploads it)."""
        for sid, read_only in self.records.holders(volume_id):
            shell = None if read_only else self.ctx.store.get_shell(sid)
            if shell is not None and shell.state in WRITING:
                return True
        return False

    async def _until_clean(self, volume_id: str) -> None:
        wait, failures = limits.DURABLE_RETRY_FIRST_S, 0
        while (token := self.host.dirty_token(volume_id)) is not None:
            rec = self.records.volume_by_id(volume_id)
            if rec is None or self._written_now(volume_id):
                return  # deleted, or a new writer: its release uploads
            try:
                async with self._locks[volume_id]:
                    await self._upload(rec, token)
                wait, failures = limits.DURABLE_RETRY_FIRST_S, 0
            except (ObjectStoreError, RuntimeFailure, OSError) as exc:
                failures += 1
                if failures == 1:  # the first failure of a run goes to the audit trail
                    self._audit_failure(rec, exc)
                log.warning("volume %s is not durable yet (%s); trying again in %.0f s", volume_id, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, limits.DURABLE_RETRY_MAX_S)

    def _audit_failure(self, rec: VolumeRecord, exc: Exception) -> None:
        code = "runtime_failure" if isinstance(exc, RuntimeFailure | OSError) else ObjectStoreUnavailable.code
        draft = self.ctx.draft(
            None, None, kind="volume", action="volume.upload", outcome=code, message=str(exc),
            details={"volume": rec.name}, tenant=rec.tenant, target=rec.id,
        )  # fmt: skip
        self.ctx.store.add_event(draft)

    async def _upload(self, rec: VolumeRecord, token: str) -> None:
        work = self.scratch / f"up-vol-{rec.id}"
        await anyio.to_thread.run_sync(_fresh_dir, work)
        try:
            packed = await self.host.export(rec.id, work)
            size = packed.stat().st_size
            digest = await put_blob(self.objects, packed)
            version = self.records.mark_durable(rec.id, rec.version, digest, size)
            if version is None:  # deleted meanwhile: its blob is not named
                await self.collect(digest)
                return
            self.host.set_local_version(rec.id, version)
            self.host.clear_dirty(rec.id, token)
            if rec.blob is not None and rec.blob != digest:
                await self.collect(rec.blob)
            log.info("volume %s is durable (version %d, %d bytes)", rec.id, version, size)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def collect(self, digest: str | None) -> None:
        """Remove a volume's former blob unless a volume, snapshot or template still names it."""
        if digest is None:
            return
        in_use = self.records.blobs_in_use() | self.ctx.store.blobs_in_use() | self.templates.blobs_in_use()
        if digest in in_use:
            return
        try:
            await self.objects.delete(blob_key(digest))
        except ObjectStoreError as exc:  # an orphan blob costs storage, nothing else
            log.warning("blob %s of a volume stays in the object store: %s", digest, exc)


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
