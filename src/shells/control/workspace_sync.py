"""Workspace sync (docs/storage.md): a shell's /workspace mirrored to its user's bucket.

The host does it all: it lists the shell's /workspace directory on its own disk without following
any link the shell made (``runtime.host.tree_scan``), and sends each new or changed file to
``prefix/<path>`` in the bucket with the user's key, which stays sealed in the record and in the
server's memory, never in the shell. A pass runs every ``sync_interval_s`` (a setting) for running
shells and once, completely, at stop, pause, snapshot and delete. A pass that fails (the bucket
unreachable, the key revoked) changes nothing in the shell: it is reported (``GET
/v1/shells/{id}/sync``, the audit trail at the first failure of a run) and tried again with growing
waits, and since a file counts as sent only once the bucket took it, nothing is lost when the bucket
returns. A file removed from /workspace is removed from the bucket; objects sync did not write are
never touched."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio

from ..domain import access, limits
from ..domain.errors import BucketUnusable, FeatureUnavailable, ShellsError
from ..domain.isolation import Runtime
from ..domain.paths import WORKSPACE
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..domain.sync import SyncStatus, SyncTarget
from ..objects.sigv4 import Credentials
from ..objects.store import Denied, NoSuchBucket, ObjectStoreError, S3Location, S3Objects, Unreachable
from ..runtime.host.tree_scan import TooManyFiles, scan
from ..runtime.wasm import workspace_fs
from ..store.syncs import ShellSyncRow, SyncStore
from .auth import authorize
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
    async def check(self, runtime: Runtime, target: SyncTarget) -> None:
        """That the class can sync and the bucket takes these credentials: BucketUnusable (400)
        within seconds otherwise, before anything is created."""
        try:  # only a path is computed: a class that cannot name one keeps /workspace out of reach
            self.ctx.backend(runtime).workspace_dir("")
        except ShellsError as exc:
            raise FeatureUnavailable(exc.message, {"field": "sync"}) from None
        try:
            await self._check_endpoint(target)
        except TargetRefused as exc:
            raise BucketUnusable(
                f"'sync.endpoint' may not be used: {exc}.", {"field": "sync.endpoint", "reason": "forbidden"}
            ) from None
        objects = _client(target, limits.SYNC_CHECK_TIMEOUT_S)
        where = f"bucket '{target.bucket}' at {target.endpoint}"
        try:
            async with asyncio.timeout(limits.SYNC_CHECK_TIMEOUT_S * 2):
                await objects.check()
        except Denied:
            raise BucketUnusable(
                f"The {where} refused the sync credentials; check 'sync.credentials'.",
                {"field": "sync.credentials", "reason": "denied"},
            ) from None
        except NoSuchBucket:
            raise BucketUnusable(
                f"There is no {where}; create it first or fix 'sync.bucket'.",
                {"field": "sync.bucket", "reason": "no_such_bucket"},
            ) from None
        except (Unreachable, TimeoutError):
            raise BucketUnusable(
                f"{target.endpoint} did not answer; check 'sync.endpoint'.",
                {"field": "sync.endpoint", "reason": "unreachable"},
            ) from None
        except ObjectStoreError as exc:
            raise BucketUnusable(
                f"The {where} cannot be used: {exc}", {"field": "sync", "reason": "error"}
            ) from None
        finally:
            await objects.aclose()

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
        ok = await self._pass(shell, row)
        if not ok and strict:
            status = self._status[shell.id]
            raise BucketUnusable(
                f"The shell was not deleted: its /workspace could not be synced to bucket "
                f"'{row.bucket}' ({status.last_error}); try again once the bucket answers.",
                {"field": "sync", "reason": "unreachable"},
            )

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
            if now < self._next_try.get(row.shell_id, 0.0):
                continue
            self.ctx.background.run(
                f"workspace-sync-{row.shell_id}", functools.partial(self._pass, shell, row)
            )

    async def _pass(self, shell: ShellRecord, row: ShellSyncRow) -> bool:
        """One comparison and upload; whether it succeeded (a failure is recorded, not raised)."""
        status = self._status.setdefault(shell.id, SyncStatus())
        async with self._locks[shell.id]:
            try:
                await self._send_changes(shell, row, status)
            except (ObjectStoreError, OSError, TooManyFiles, ShellsError) as exc:
                self._failed(shell, status, str(exc))
                return False
        now = datetime.now(UTC)
        status.last_synced_at, status.last_error, status.last_error_at, status.failures = now, None, None, 0
        self._next_try.pop(shell.id, None)
        if shell.state is not ShellState.RUNNING:
            self._settled.add(shell.id)
        self.rows.note(shell.id, now, None, None)
        return True

    async def _check_endpoint(self, target: SyncTarget) -> None:
        """Refuse an endpoint that is, or now resolves to, an address the server must not send the
        user's requests to (``domain.webhooks.forbidden_address``), unless the operator listed it.
        Checked at create and before every pass: a name can point elsewhere later."""
        if urlsplit(target.endpoint).netloc in self.ctx.settings.sync_private_endpoints:
            return
        await resolve(target.endpoint, self.own)

    async def _send_changes(self, shell: ShellRecord, row: ShellSyncRow, status: SyncStatus) -> None:
        target = self._target(row)
        try:
            await self._check_endpoint(target)
        except TargetRefused as exc:
            raise ObjectStoreError(f"the endpoint may not be used: {exc}") from None
        root = self.ctx.backend(shell.runtime).workspace_dir(shell.id)
        found = await anyio.to_thread.run_sync(scan, root, limits.SYNC_MAX_FILES)
        sent = self._sent.setdefault(shell.id, {})
        changed = [path for path, mark in found.files.items() if sent.get(path) != mark]
        gone = [path for path in sent if path not in found.files]
        status.pending_files, status.skipped_files = len(changed) + len(gone), found.skipped
        objects = _client(target, 30.0)
        try:
            for path in changed:
                fd = workspace_fs.open_file(root, f"{WORKSPACE}/{path}", os.O_RDONLY | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as f:
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

    def _failed(self, shell: ShellRecord, status: SyncStatus, error: str) -> None:
        status.failures += 1
        status.last_error, status.last_error_at = error, datetime.now(UTC)
        first = self.ctx.settings.sync_first_retry_s
        wait = min(first * 2 ** (status.failures - 1), limits.SYNC_RETRY_MAX_S)
        self._next_try[shell.id] = time.monotonic() + wait
        self._settled.discard(shell.id)
        self.rows.note(shell.id, None, error, status.last_error_at)
        log.warning("workspace sync of %s failed (%s); next try in %.0f s", shell.id, error, wait)
        if status.failures == 1:  # the first failure of a run goes to the audit trail
            draft = self.ctx.draft(
                None, shell, kind="sync", action="sync", outcome="bucket_unusable", message=error
            )
            self.ctx.store.add_event(draft)

    def _target(self, row: ShellSyncRow) -> SyncTarget:
        secret = self.box.open(row.tenant, f"{SEALED_AS}:{row.shell_id}", row.sealed_secret)
        return SyncTarget(row.endpoint, row.bucket, row.prefix, row.access_key_id, secret, row.region)


def _client(target: SyncTarget, timeout_s: float) -> S3Objects:
    credentials = Credentials(target.access_key_id, target.secret_access_key, target.region)
    where = S3Location(target.endpoint, target.bucket, target.prefix, credentials)
    return S3Objects(where, timeout_s=timeout_s)
