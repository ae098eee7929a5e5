"""Snapshots and templates in the object store (docs/storage.md): the durable layer of an instance.

A snapshot is taken, or a template made, on one machine as before; then, in the background, the
backend packs it into files, each file goes to the object store as a blob named by its SHA-256, and
the record says when all of it is there (``durable_at``) and which blobs hold it. Uploads run a few
at a time and are retried with growing waits until they succeed or the thing is deleted; a server
that stops mid-upload starts it again at its next start. A machine asked to start a shell from a
snapshot or a template it does not hold fetches the blobs (each checked against its digest on
arrival) and lets its backend rebuild it first. Deleting one removes every blob no kept snapshot or
template still names. Built-in templates are never uploaded: every machine imports or builds them."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from ..domain import limits
from ..domain.durable import StoredPart
from ..domain.errors import ActionNotSupported, InvalidState, ObjectStoreUnavailable, RuntimeFailure
from ..domain.isolation import DEFAULT_RUNTIME
from ..domain.shell import SnapshotRecord
from ..domain.templates import TemplateKind, TemplateRecord
from ..node.carrier import Carrier, LocalCarrier
from ..objects.store import ObjectStore, ObjectStoreError, blob_key
from ..store.moves import MoveStore
from ..store.storage import StorageStore
from ..store.templates import TemplateStore
from .context import ControlContext

log = logging.getLogger(__name__)
NOT_UPLOADED = frozenset({TemplateKind.BUILTIN, TemplateKind.BUILD_STEP})
"""Templates every machine makes itself (built-ins) or that only speed up builds (a build's steps)."""

Put = Callable[[], Awaitable[list[StoredPart]]]
Get = Callable[[], Awaitable[None]]


class Durable:
    def __init__(self, ctx: ControlContext, objects: ObjectStore, carrier: Carrier | None = None) -> None:
        """``carrier``: who moves the bytes (a cluster's node agents, each for what its disk holds);
        by default this machine, with its own backends."""
        self.ctx = ctx
        self.objects = objects
        self.templates = TemplateStore(ctx.store)
        self.scratch = ctx.settings.data_dir / "durable"
        self._slots = asyncio.Semaphore(limits.DURABLE_UPLOADS)
        self._fetching: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._uploading: set[str] = set()
        """Digests of blobs being stored now, not yet in the record: never collected meanwhile."""
        self.carrier: Carrier = carrier or LocalCarrier(
            ctx.backends, objects, self.scratch, on_digest=self._uploading.add
        )

    async def check(self) -> None:
        """That the store answers to these credentials: a wrong URL stops the start with the reason."""
        try:
            await self.objects.check()
        except ObjectStoreError as exc:
            raise ObjectStoreUnavailable(
                f"The object store (SHELLS_OBJECT_STORE) cannot be used: {exc}"
            ) from None

    async def start(self) -> None:
        """Upload every snapshot and template this machine holds that is not durable yet (a stop cut
        its upload short)."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        for runtime, backend in self.ctx.backends.items():
            here = (await backend.inventory()).snapshots
            for snap in self.ctx.store.list_snapshots(None):
                if snap.runtime is runtime and snap.durable_at is None and snap.id in here:
                    self.upload_snapshot_later(snap)
        backend = self.ctx.backend(DEFAULT_RUNTIME)
        for rec in self.templates.list(None):
            if rec.durable_at is None and backend.template_meta(rec.name) is not None:
                self.upload_template_later(rec)

    async def close(self) -> None:
        await self.objects.aclose()

    # uploads --------------------------------------------------------------------------------------
    def upload_snapshot_later(self, snap: SnapshotRecord) -> None:
        """Start keeping ``snap`` in the object store, in the background."""
        self._upload_later(
            snap.id,
            lambda: self.ctx.store.get_snapshot(snap.id) is not None,
            lambda: self.carrier.put_snapshot(snap.runtime, snap.id),
            lambda parts: self.ctx.store.mark_snapshot_durable(snap.id, parts),
        )

    def upload_template_later(self, rec: TemplateRecord) -> None:
        """Start keeping template ``rec`` in the object store (not a built-in), in the background."""
        if rec.meta.kind in NOT_UPLOADED:
            return
        name, content_hash = rec.name, rec.meta.content_hash

        def alive() -> bool:
            now = self.templates.get(name)
            return now is not None and now.meta.content_hash == content_hash

        self._upload_later(
            f"template-{content_hash}",
            alive,
            lambda: self.carrier.put_template(name),
            lambda parts: self.templates.mark_durable(name, content_hash, parts),
        )

    def _upload_later(
        self,
        key: str,
        alive: Callable[[], bool],
        put: Put,
        mark: Callable[[list[StoredPart]], datetime | None],
    ) -> None:
        async def until_done() -> None:
            wait = limits.DURABLE_RETRY_FIRST_S
            while alive():
                try:
                    async with self._slots:
                        await self._upload(key, put, mark)
                    return
                except ActionNotSupported as exc:
                    log.info("%s stays on this machine only: %s", key, exc)
                    return
                except (ObjectStoreError, ObjectStoreUnavailable, RuntimeFailure, OSError) as exc:
                    log.warning("%s is not durable yet (%s); trying again in %.0f s", key, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, limits.DURABLE_RETRY_MAX_S)

        self.ctx.background.run(f"durable-{key}", until_done)

    async def _upload(self, key: str, put: Put, mark: Callable[[list[StoredPart]], datetime | None]) -> None:
        stored: list[StoredPart] = []
        try:
            stored = await put()
            if mark(stored) is None:  # deleted meanwhile
                await self.collect(stored)
            else:
                log.info("%s is durable (%d bytes)", key, sum(p.size for p in stored))
        finally:
            self._uploading.difference_update(p.sha256 for p in stored)

    # fetches --------------------------------------------------------------------------------------
    async def ensure_snapshot_here(self, snap: SnapshotRecord, node: str | None = None) -> None:
        """Make ``snap`` present on this machine (a cluster's node ``node``) before a shell starts
        from it: fetched from the object store when another machine took it."""
        backend, carrier = self.ctx.backend(snap.runtime), self.carrier
        if node is not None and self.ctx.fleet is not None:
            backend, carrier = self.ctx.fleet.backend(node, snap.runtime), self.ctx.fleet.carrier(node)

        async def here() -> bool:
            return snap.id in (await backend.inventory()).snapshots

        what = f"Snapshot '{snap.id}'"
        await self._ensure_here(
            snap.id if node is None else f"{snap.id}@{node}",
            what,
            here,
            snap.durable_at,
            lambda: carrier.get_snapshot(snap.runtime, snap.id, snap.parts),
        )

    async def ensure_template_here(self, rec: TemplateRecord) -> None:
        """The same for a template another machine made (a no-op for one this machine has)."""
        backend = self.ctx.backend(DEFAULT_RUNTIME)

        async def here() -> bool:
            return backend.template_meta(rec.name) is not None

        what = f"Template '{rec.name}'"
        await self._ensure_here(
            f"template-{rec.meta.content_hash}",
            what,
            here,
            rec.durable_at,
            lambda: self.carrier.get_template(rec.meta, rec.parts),
        )

    async def _ensure_here(
        self,
        key: str,
        what: str,
        here: Callable[[], Awaitable[bool]],
        durable_at: datetime | None,
        fetch: Get,
    ) -> None:
        async with self._fetching[key]:
            if await here():
                return
            if durable_at is None:
                raise InvalidState(
                    f"{what} is on another machine and not yet in the object store; "
                    "use it there, or again once it shows 'durable': true."
                )
            try:
                await fetch()
            except ObjectStoreError as exc:
                raise ObjectStoreUnavailable(
                    f"{what} could not be fetched from the object store: {exc}"
                ) from None

    # deletes --------------------------------------------------------------------------------------
    async def collect(self, parts: Iterable[StoredPart]) -> None:
        """Remove the blobs of ``parts`` that nothing kept names any more."""
        in_use = (
            self.ctx.store.blobs_in_use()
            | self.templates.blobs_in_use()
            | MoveStore(self.ctx.store).blobs_in_use()
            | StorageStore(self.ctx.store).blobs_in_use()  # a volume's blob (control/volume_store)
            | self._uploading
        )
        for part in parts:
            if part.sha256 in in_use:
                continue
            try:
                await self.objects.delete(blob_key(part.sha256))
            except ObjectStoreError as exc:  # an orphan blob costs storage, nothing else
                log.warning("blob %s of a deleted record stays in the object store: %s", part.sha256, exc)
