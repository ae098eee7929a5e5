"""Workspace sync (docs/storage.md): a shell's /workspace mirrored to its user's bucket.

The host does it all: it lists the shell's /workspace directory on its own disk without following
any link the shell made (``runtime.host.tree_scan``), and sends each new or changed file to
``prefix/<path>`` in the bucket with the user's key, which stays sealed in the record and in the
server's memory, never in the shell. A pass runs every ``sync_interval_s`` (a setting) for running
shells and once, completely, at stop, pause, snapshot and delete. A class whose /workspace the host
does not hold on its own disk (a microvm's is inside its disk image) is read through its agent
instead, under host-side caps (``agent_tree``), and its complete pass is made just before a stop,
pause or snapshot, while the agent still answers. A pass that fails (the bucket unreachable, the key
revoked) changes nothing in the shell: it is reported (``GET /v1/shells/{id}/sync``, the audit
trail at the first failure of a run) and tried again with growing waits, and since a file counts as
sent only once the bucket took it, nothing is lost when the bucket returns. A file removed from
/workspace is removed from the bucket; objects sync did not write are never touched."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import anyio

from ..domain import access, limits
from ..domain.errors import ActionNotSupported, BucketUnreachable, RuntimeFailure, ShellsError
from ..domain.paths import WORKSPACE
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..domain.sync import SyncStatus, SyncTarget
from ..objects.sigv4 import Credentials
from ..objects.store import ObjectStoreError, S3Location, S3Objects
from ..runtime.host.tree_scan import TooManyFiles, scan
from ..runtime.wasm import workspace_fs
from ..store.syncs import ShellSyncRow, SyncStore
from . import agent_tree
from .auth import authorize
from .bucket_access import bucket_error, check_bucket
from .context import ControlContext
from .secret_box import SecretBox
from .webhook_target import OwnAddresses, TargetRefused, resolve

log = logging.getLogger(__name__)
SEALED_AS = "workspace-sync"
"""The name the user's secret key is sealed under (with the shell's id), so it opens for no other."""


class WorkspaceSync:
    def __init__(self, ctx: ControlContext, box: SecretBox, own: OwnAddresses) -> None:
        self.ctx = ctx
        self.box = box
        self.own = own
        """This host's addresses and the shells' range: no endpoint may lead there."""
        self.rows = SyncStore(ctx.store)
        self._status: dict[str, SyncStatus] = {}
        self._sent: dict[str, dict[str, tuple[int, int]]] = {}
        """Per shell: path → (size, mtime) of every file the bucket holds as sync sent it."""
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._next_try: dict[str, float] = {}
        self._settled: set[str] = set()
        """Shells not running whose last pass succeeded: nothing can change until they start."""

    def start(self) -> None:
        self.ctx.background.every("workspace-sync", self.ctx.settings.sync_interval_s, self._sweep)

    # create ---------------------------------------------------------------------------------------
    async def check(self, target: SyncTarget) -> None:
        """That the bucket takes these credentials: the typed error of ``bucket_access`` within
        seconds otherwise, before anything is created. Every class can sync: on the host's disk or
        through its agent."""
        location = _location(target)
        try:
            await self._check_endpoint(target)
        except TargetRefused as exc:
            raise bucket_error(exc, location, "sync") from None
        await check_bucket(location, "sync", limits.SYNC_CHECK_TIMEOUT_S)

    def attach(self, shell: ShellRecord, target: SyncTarget) -> None:
        self.rows.add(
            ShellSyncRow(
                shell_id=shell.id,
                tenant=shell.tenant,
                endpoint=target.endpoint,
                bucket=target.bucket,
                prefix=target.prefix,
                region=target.region,
                access_key_id=target.access_key_id,
                sealed_secret=self.box.seal(
                    shell.tenant, f"{SEALED_AS}:{shell.id}", target.secret_access_key
                ),
                created_at=datetime.now(UTC),
            )
        )

    # reads ----------------------------------------------------------------------------------------
    def status(self, principal: Principal, shell_id: str) -> dict[str, Any]:
        shell = authorize(self.ctx.store, principal, shell_id, access.READ)
        row = self.rows.get(shell.id)
        if row is None:
            return {"enabled": False}
        status = self._status.get(shell.id) or SyncStatus(
            last_synced_at=row.last_synced_at, last_error=row.last_error, last_error_at=row.last_error_at
        )
        return {"enabled": True, **self._target(row).to_public(), **status.to_public()}

    # passes ---------------------------------------------------------------------------------------
    async def flush(self, shell: ShellRecord, *, strict: bool) -> None:
        """A complete pass now (at stop, pause, snapshot, delete). With ``strict`` a failure is
        raised (a delete must not lose what the bucket lacks), else reported and retried later."""
        row = self.rows.get(shell.id)
        if row is None:
            return
        failure = await self._pass(shell, row)
        if failure is not None and strict:
            then = "try again once the bucket answers"
            if self._host_root(shell) is None and shell.state is not ShellState.RUNNING:
                then = "once the bucket answers, start or resume it (its agent reads it), then delete it"
            raise type(failure)(
                f"The shell was not deleted: its /workspace could not be synced to bucket "
                f"'{row.bucket}' ({failure.message}); {then}.",
                failure.details,
            )

    @asynccontextmanager
    async def around_save(self, shell: ShellRecord) -> AsyncIterator[None]:
        """Wrapped around a stop, pause or snapshot. For a shell read through its agent, the complete
        pass is made now, before the action (after it the agent may be gone), and the shell's sync
        lock is held through the action, so no background pass reads a VM being saved. A failed
        pass is reported and does not stop the action."""
        row = self.rows.get(shell.id)
        if row is None or shell.state is not ShellState.RUNNING or self._host_root(shell) is not None:
            yield
            return
        async with self._locks[shell.id]:
            await self._pass_locked(shell, row)
            yield

    def forget(self, shell_id: str) -> None:
        """The shell is deleted (after its last pass): its sync ends."""
        self.rows.remove(shell_id)
        for table in (self._status, self._sent, self._next_try, self._locks):
            table.pop(shell_id, None)
        self._settled.discard(shell_id)

    async def _sweep(self) -> None:
        now = time.monotonic()
        for row in self.rows.all():
            shell = self.ctx.store.get_shell(row.shell_id)
            if shell is None or shell.state is ShellState.DELETED:
                continue
            if row.shell_id in self._settled and shell.state is not ShellState.RUNNING:
                continue
            if shell.state not in (ShellState.RUNNING, ShellState.STOPPED, ShellState.PAUSED):
                continue
            if shell.state is not ShellState.RUNNING and self._host_root(shell) is None:
                continue  # nothing to read without its agent, and nothing changes until it runs
            if now < self._next_try.get(row.shell_id, 0.0):
                continue
            self.ctx.background.run(
                f"workspace-sync-{row.shell_id}", functools.partial(self._pass, shell, row)
            )

    async def _pass(self, shell: ShellRecord, row: ShellSyncRow) -> ShellsError | None:
        """One comparison and upload; its failure as a typed error (recorded, not raised), or None."""
        async with self._locks[shell.id]:
            return await self._pass_locked(shell, row)

    async def _pass_locked(self, shell: ShellRecord, row: ShellSyncRow) -> ShellsError | None:
        status = self._status.setdefault(shell.id, SyncStatus())
        if self._host_root(shell) is None:
            now_state = self.ctx.store.get_shell(shell.id)
            if now_state is not None and now_state.state is not ShellState.RUNNING:
                # its agent is gone: the pass made before the stop or pause is the last one it had
                if row.last_error is None and row.last_synced_at is not None:
                    return None
                return BucketUnreachable(
                    row.last_error or "its last pass before it stopped did not complete",
                    {"field": "sync", "reason": "unreachable"},
                )
        try:
            await self._send_changes(shell, row, status)
        except (ObjectStoreError, TargetRefused, TimeoutError) as exc:
            failure = bucket_error(exc, _location(self._target(row)), "sync")
            self._failed(shell, status, failure, str(exc))
            return failure
        except (OSError, TooManyFiles, ShellsError) as exc:  # the host's side: no bucket code
            failure = exc if isinstance(exc, ShellsError) else RuntimeFailure(str(exc))
            self._failed(shell, status, failure, str(exc))
            return failure
        now = datetime.now(UTC)
        status.last_synced_at, status.last_error, status.last_error_at, status.failures = now, None, None, 0
        self._next_try.pop(shell.id, None)
        if shell.state is not ShellState.RUNNING:
            self._settled.add(shell.id)
        self.rows.note(shell.id, now, None, None)
        return None

    async def _check_endpoint(self, target: SyncTarget) -> None:
        """Refuse an endpoint that is, or now resolves to, an address the server must not send the
        user's requests to (``domain.webhooks.forbidden_address``), unless the operator listed it.
        Checked at create and before every pass: a name can point elsewhere later."""
        if urlsplit(target.endpoint).netloc in self.ctx.settings.sync_private_endpoints:
            return
        await resolve(target.endpoint, self.own)

    async def _send_changes(self, shell: ShellRecord, row: ShellSyncRow, status: SyncStatus) -> None:
        target = self._target(row)
        await self._check_endpoint(target)
        root = self._host_root(shell)
        if root is None:
            room = limits.SYNC_KEY_MAX_BYTES - len(target.prefix.encode()) - 1
            found = await agent_tree.scan(
                self.ctx.backend(shell.runtime),
                shell.id,
                limits.SYNC_MAX_FILES,
                room,
                limits.SYNC_AGENT_FILE_MAX_BYTES,
            )
        else:
            found = await anyio.to_thread.run_sync(scan, root, limits.SYNC_MAX_FILES)
        sent = self._sent.setdefault(shell.id, {})
        changed = [path for path, mark in found.files.items() if sent.get(path) != mark]
        gone = [path for path in sent if path not in found.files]
        status.pending_files, status.skipped_files = len(changed) + len(gone), found.skipped
        objects = _client(target, 30.0)
        try:
            for path in changed:
                async with self._opened(shell, root, path) as f:
                    await objects.put_file(path, f)
                sent[path] = found.files[path]
                status.pending_files -= 1
            for path in gone:
                await objects.delete(path)
                del sent[path]
                status.pending_files -= 1
        finally:
            await objects.aclose()
            status.synced_files, status.synced_bytes = len(sent), sum(size for size, _ in sent.values())

    def _host_root(self, shell: ShellRecord) -> Path | None:
        """The host directory that is the shell's /workspace, or None when it is read through the
        shell's agent (a class whose /workspace the host does not read on its disk)."""
        try:
            return self.ctx.backend(shell.runtime).workspace_dir(shell.id)
        except ActionNotSupported:
            return None

    @asynccontextmanager
    async def _opened(self, shell: ShellRecord, root: Path | None, path: str) -> AsyncIterator[BinaryIO]:
        if root is None:
            backend = self.ctx.backend(shell.runtime)
            spool = self.ctx.settings.data_dir / "sync-spool"
            max_bytes = limits.SYNC_AGENT_FILE_MAX_BYTES
            async with agent_tree.spooled(backend, shell.id, path, max_bytes, spool) as f:
                yield f
            return
        fd = workspace_fs.open_file(root, f"{WORKSPACE}/{path}", os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            yield f

    def _failed(self, shell: ShellRecord, status: SyncStatus, failure: ShellsError, error: str) -> None:
        status.failures += 1
        status.last_error, status.last_error_at = error, datetime.now(UTC)
        status.last_error_code = failure.code
        first = self.ctx.settings.sync_first_retry_s
        wait = min(first * 2 ** (status.failures - 1), limits.SYNC_RETRY_MAX_S)
        self._next_try[shell.id] = time.monotonic() + wait
        self._settled.discard(shell.id)
        self.rows.note(shell.id, None, error, status.last_error_at)
        log.warning("workspace sync of %s failed (%s); next try in %.0f s", shell.id, error, wait)
        if status.failures == 1:  # the first failure of a run goes to the audit trail
            draft = self.ctx.draft(
                None, shell, kind="sync", action="sync", outcome=failure.code, message=error
            )
            self.ctx.store.add_event(draft)

    def _target(self, row: ShellSyncRow) -> SyncTarget:
        secret = self.box.open(row.tenant, f"{SEALED_AS}:{row.shell_id}", row.sealed_secret)
        return SyncTarget(row.endpoint, row.bucket, row.prefix, row.access_key_id, secret, row.region)


def _location(target: SyncTarget) -> S3Location:
    credentials = Credentials(target.access_key_id, target.secret_access_key, target.region)
    return S3Location(target.endpoint, target.bucket, target.prefix, credentials)


def _client(target: SyncTarget, timeout_s: float) -> S3Objects:
    return S3Objects(_location(target), timeout_s=timeout_s)
