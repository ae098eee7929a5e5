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
crash between a shell's end and its upload loses nothing kept on this machine's disk.

On a cluster each node keeps its own copies and moves their bytes itself (``node.volume_copies``);
this module decides which node's copy is uploaded or fetched, and attaching a volume on one node
first uploads a copy another node still holds dirty, so the shell reads the last writer's files."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ..domain import limits
from ..domain.errors import ObjectStoreUnavailable, RuntimeFailure, ShellsError, Unavailable
from ..domain.states import ShellState
from ..node.volume_copies import LocalVolumeCarrier, VolumeCarrier
from ..objects.store import ObjectStore, ObjectStoreError, blob_key
from ..runtime.volumes import HostVolumes
from ..settings import Settings
from ..store.storage import StorageStore, VolumeRecord
from ..store.templates import TemplateStore
from .context import ControlContext

if TYPE_CHECKING:
    from ..node.routed import Fleet

log = logging.getLogger(__name__)
WRITING = (ShellState.CREATING, ShellState.RUNNING, ShellState.PAUSED)
"""States of a read-write holder whose writes may still change the volume."""


@dataclass(frozen=True)
class VolumeHost:
    """One machine's volume copies and the way their bytes go to and from the object store (a node
    agent's over the RPC: the bytes never pass through the control plane)."""

    copies: HostVolumes
    carrier: VolumeCarrier


Hosts = Callable[[], Mapping[str, VolumeHost]]
"""The machines that keep volumes, by node name (one on one box; a cluster's reachable nodes)."""


def volume_hosts(
    settings: Settings, fleet: Fleet | None, volumes: HostVolumes | None, objects: ObjectStore
) -> Hosts | None:
    """Where volumes are kept: on a cluster each node that keeps them (as the fleet is now), on one
    box this machine's ``volumes``, moved with ``objects``; None: nowhere."""
    if fleet is not None:
        return lambda: {
            name: VolumeHost(node.volumes, node.volume_carrier)
            for name, node in fleet.members.items()
            if node.volumes is not None and node.volume_carrier is not None
        }
    if volumes is None:
        return None
    here = {
        settings.node_name: VolumeHost(
            volumes, LocalVolumeCarrier(volumes, objects, settings.data_dir / "durable")
        )
    }
    return lambda: here


class VolumeStore:
    def __init__(self, ctx: ControlContext, hosts: Hosts, objects: ObjectStore) -> None:
        self.ctx, self.hosts, self.objects = ctx, hosts, objects
        self.records = StorageStore(ctx.store)
        self.templates = TemplateStore(ctx.store)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._releases: defaultdict[str, int] = defaultdict(int)
        """Releases asked per volume: an upload task that finds its copy clean ends only when no
        release came while it looked (that release found the task still running and started none)."""

    def start(self) -> None:
        self.ctx.background.every("volume-uploads", limits.VOLUME_SWEEP_S, self._sweep)

    def host(self, node: str) -> VolumeHost:
        """The machine ``node`` (on one box, the only one whatever name a shell's record carries)."""
        hosts = self.hosts()
        found = hosts.get(node) or (next(iter(hosts.values())) if len(hosts) == 1 else None)
        if found is None:
            raise Unavailable(f"Node {node!r} keeps no volumes this control plane reaches; retry shortly.")
        return found

    def source(self, node: str, volume_id: str) -> Path:
        """The directory a shell on ``node`` binds."""
        return self.host(node).copies.source(volume_id)

    # fetch ----------------------------------------------------------------------------------------
    async def ensure_on(self, node: str, rec: VolumeRecord, *, moving: str | None = None) -> None:
        """Machine ``node`` holds the volume's newest copy: a copy another machine still holds dirty
        (its writer let it go, its upload not done yet) is uploaded first; then it is fetched from
        the object store when it is missing here or older than the record, made empty when it was
        never stored anywhere. ``moving``: a holder moving to ``node`` (stopped or paused, so it
        writes nothing meanwhile), whose own copy is stored first even though it still holds it."""
        host = self.host(node)
        async with self._locks[rec.id]:
            rec = self.records.volume_by_id(rec.id) or rec  # an upload may have ended meanwhile
            rec = await self._settle_elsewhere(node, rec, moving)
            copies = host.copies
            if copies.has(rec.id) and copies.local_version(rec.id) >= rec.version:
                return
            if rec.blob is None:  # never uploaded: nothing was ever written to it
                if not copies.has(rec.id):
                    await copies.create(rec.id, rec.size_gib * 1024**3)
                return
            try:
                await host.carrier.get_volume(rec.id, rec.size_gib * 1024**3, rec.blob, rec.version)
            except ObjectStoreError as exc:
                raise ObjectStoreUnavailable(
                    f"Volume {rec.name!r} could not be fetched from the object store: {exc}"
                ) from None
            log.info("volume %s fetched onto %s (version %d)", rec.id, node, rec.version)

    async def _settle_elsewhere(self, node: str, rec: VolumeRecord, moving: str | None) -> VolumeRecord:
        """Upload a copy another machine holds dirty with no writer running (the lock held); the
        record as it is then."""
        if self._written_now(rec.id, moving):
            return rec  # its writer runs: a reader gets the last version stored
        for name, other in self.hosts().items():
            if name == node:
                continue
            try:
                token = await anyio.to_thread.run_sync(other.copies.dirty_token, rec.id)
            except (ShellsError, OSError) as exc:  # a node gone: its unsaved writes are lost with it
                log.warning("node %s did not say whether it holds volume %s unsaved: %s", name, rec.id, exc)
                continue
            if token is not None:
                await self._upload(other, rec, token)
                rec = self.records.volume_by_id(rec.id) or rec
        return rec

    # upload ---------------------------------------------------------------------------------------
    def writing(self, node: str, volume_id: str) -> None:
        """A read-write holder starts on ``node``: the copy must be uploaded once it is let go."""
        self.host(node).copies.mark_dirty(volume_id)

    def released(self, node: str, volume_ids: list[str]) -> None:
        """Their writer on ``node`` stopped or went away: upload each in the background."""
        try:
            host = self.host(node)
        except Unavailable:
            return  # the sweep uploads it once the node answers again
        for vid in volume_ids:
            self._releases[vid] += 1
            self.ctx.background.run(f"volume-upload-{vid}", functools.partial(self._until_clean, host, vid))

    async def _sweep(self) -> None:
        for name, host in self.hosts().items():
            try:
                dirty = await anyio.to_thread.run_sync(host.copies.dirty)
            except (ShellsError, OSError) as exc:
                log.warning("the volume copies of node %s were not checked: %s", name, exc)
                continue
            writing = [vid for vid in dirty if not self._written_now(vid)]
            if writing:
                self.released(name, writing)

    def _written_now(self, volume_id: str, moving: str | None = None) -> bool:
        """Whether a read-write holder (other than ``moving``) may still be writing it (then its
        release uploads it)."""
        for sid, read_only in self.records.holders(volume_id):
            shell = None if read_only or sid == moving else self.ctx.store.get_shell(sid)
            if shell is not None and shell.state in WRITING:
                return True
        return False

    async def _until_clean(self, host: VolumeHost, volume_id: str) -> None:
        wait, failures = limits.DURABLE_RETRY_FIRST_S, 0
        while True:
            asked = self._releases[volume_id]
            token = await anyio.to_thread.run_sync(host.copies.dirty_token, volume_id)
            if token is None:
                if self._releases[volume_id] == asked:
                    return
                continue  # released again while we looked: look again
            rec = self.records.volume_by_id(volume_id)
            if rec is None or self._written_now(volume_id):
                return  # deleted, or a new writer: its release uploads
            try:
                async with self._locks[volume_id]:
                    await self._upload(host, rec, token)
                wait, failures = limits.DURABLE_RETRY_FIRST_S, 0
            except (ObjectStoreError, RuntimeFailure, ObjectStoreUnavailable, Unavailable, OSError) as exc:
                failures += 1
                if failures == 1:  # the first failure of a run goes to the audit trail
                    self._audit_failure(rec, exc)
                log.warning("volume %s is not durable yet (%s); trying again in %.0f s", volume_id, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, limits.DURABLE_RETRY_MAX_S)

    def _audit_failure(self, rec: VolumeRecord, exc: Exception) -> None:
        stored = isinstance(exc, ObjectStoreError | ObjectStoreUnavailable)
        code = ObjectStoreUnavailable.code if stored else "runtime_failure"
        draft = self.ctx.draft(
            None, None, kind="volume", action="volume.upload", outcome=code, message=str(exc),
            details={"volume": rec.name}, tenant=rec.tenant, target=rec.id,
        )  # fmt: skip
        self.ctx.store.add_event(draft)

    async def _upload(self, host: VolumeHost, rec: VolumeRecord, token: str) -> None:
        """Store the copy ``host`` holds, ``token`` its dirty mark when it was read."""
        digest, size = await host.carrier.put_volume(rec.id)
        version = self.records.mark_durable(rec.id, rec.version, digest, size)
        if version is None:  # deleted meanwhile: its blob is not named
            await self.collect(digest)
            return
        host.copies.set_local_version(rec.id, version)
        host.copies.clear_dirty(rec.id, token)
        if rec.blob is not None and rec.blob != digest:
            await self.collect(rec.blob)
        log.info("volume %s is durable (version %d, %d bytes)", rec.id, version, size)

    async def remove(self, rec: VolumeRecord) -> None:
        """The volume is deleted from the record: its copies on every machine, and its blob, go."""
        for name, host in self.hosts().items():
            try:
                await host.copies.delete(rec.id)
            except (ShellsError, OSError) as exc:  # a stale copy costs that node's disk, nothing else
                log.warning("the copy of volume %s on node %s stays: %s", rec.id, name, exc)
        await self.collect(rec.blob)

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
