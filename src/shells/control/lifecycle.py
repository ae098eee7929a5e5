"""Use cases that create, change and delete shells."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain import access
from ..domain.capabilities import ALLOWED_STATES, DESTRUCTIVE, Capability
from ..domain.errors import (
    ActionNotSupported,
    FeatureUnavailable,
    InvalidRequest,
    InvalidState,
    RecordUnavailable,
    ShellsError,
)
from ..domain.ids import new_id
from ..domain.isolation import PRESET_TEMPLATES, Runtime, parse_enum
from ..domain.principal import Principal, Scope
from ..domain.shapes import get_shape
from ..domain.shell import ShellRecord, SnapshotRecord
from ..domain.states import ShellState
from ..runtime.backend import Backend
from ..runtime.faults import reached
from ..store.moves import MoveStore
from ..store.repository import EventDraft
from .auth import authorize, find_snapshot, require, visible_shells
from .bucket_credentials import BucketCredentialsBook
from .context import ControlContext
from .durable import Durable
from .fork import fork_shell
from .inflight import Inflight
from .networking import Networking
from .placement import place
from .pool import WarmPools
from .requests import CreateShellRequest, parse_fork_count, parse_log_bytes
from .secrets import Secrets
from .snapshot_placement import SnapshotPlacement
from .storage import Attachments, Storage
from .suspend import Suspension
from .templates import Templates
from .wasm_shells import wasm_template
from .workspace_sync import WorkspaceSync

log = logging.getLogger(__name__)
MAX_LOG_BYTES = 256 * 1024
ABANDON_WAIT_S = 60.0
"""How long a create refused by a database outage waits for the database to undo what it made."""
ABANDON_RETRY_S = 0.5
SYNC_COMPLETELY = frozenset({Capability.STOP, Capability.PAUSE, Capability.SNAPSHOT})
"""Actions after which a synced /workspace is sent completely (docs/storage.md)."""
SYNC_BEFORE = frozenset({Capability.STOP, Capability.SNAPSHOT})
"""Actions before which a /workspace read through the agent is sent completely (a pause does it in
``Suspension.pause``, which the idle monitor uses too)."""


class Lifecycle:
    def __init__(
        self,
        ctx: ControlContext,
        pool: WarmPools,
        templates: Templates,
        network: Networking,
        suspension: Suspension,
        secrets: Secrets | None = None,
        durable: Durable | None = None,
        sync: WorkspaceSync | None = None,
        storage: Storage | None = None,
        credentials: BucketCredentialsBook | None = None,
    ) -> None:
        self.ctx = ctx
        self.credentials = credentials
        self.secrets = secrets
        self.durable = durable
        self.sync = sync
        self.storage = storage
        self.pool = pool
        self.templates = templates
        self.network = network
        self.suspension = suspension
        self.from_snapshot = SnapshotPlacement(ctx, durable)
        self._reclaim: set[asyncio.Task[None]] = set()
        self._inflight = Inflight(ctx.settings.data_dir)

    # reads ----------------------------------------------------------------------------------------
    def get(self, principal: Principal, shell_id: str) -> ShellRecord:
        return authorize(self.ctx.store, principal, shell_id, access.READ)

    def list(
        self,
        principal: Principal,
        *,
        state: str | None = None,
        runtime: str | None = None,
        label: str | None = None,
    ) -> list[ShellRecord]:
        require(principal, Scope.READ)
        wanted_state = parse_enum(ShellState, state, "state") if state else None
        wanted_runtime = parse_enum(Runtime, runtime, "runtime") if runtime else None
        shells = visible_shells(self.ctx.store, principal)
        if wanted_state is not None:
            shells = [s for s in shells if s.state is wanted_state]
        if wanted_runtime is not None:
            shells = [s for s in shells if s.runtime is wanted_runtime]
        if label:
            key, sep, value = label.partition("=")
            shells = [s for s in shells if key in s.labels and (not sep or s.labels[key] == value)]
        return shells

    # create ---------------------------------------------------------------------------------------
    async def create(self, principal: Principal, req: CreateShellRequest, door: str) -> ShellRecord:
        require(principal, Scope.CREATE)
        if self.credentials is not None:  # named bucket credentials become keys before any check
            req = self.credentials.resolve(principal, req)
        backend = self.ctx.backend(req.runtime)
        if req.network.mode not in backend.network_modes:
            offered = ", ".join(sorted(m.value for m in backend.network_modes))
            raise FeatureUnavailable(
                f"Network mode '{req.network.mode}' is not available for {req.runtime} shells on this host "
                f"yet; use one of: {offered}.",
                {"field": "network.mode"},
            )
        region = req.region or self.ctx.settings.region
        cordoned = MoveStore(self.ctx.store).cordoned()
        shape = get_shape(req.shape)
        snap = None if req.snapshot is None else find_snapshot(self.ctx.store, principal, req.snapshot)
        if snap is None:
            node = place(self.ctx.offers(), region, req.runtime, shape, cordoned)
        elif snap.runtime is not req.runtime:
            raise InvalidRequest(
                f"Snapshot '{snap.id}' was taken of a {snap.runtime} shell; "
                f"create it with runtime '{snap.runtime}'."
            )
        else:  # where the snapshot is, or a node that fetched it from the object store
            node = await self.from_snapshot.place(snap, region, shape, cordoned)
        if self.ctx.placed is not None:
            self.ctx.placed(node, shape)
        template = req.template or PRESET_TEMPLATES[req.language]
        if snap is not None:
            template = snap.template
        elif req.runtime is Runtime.WASM:
            template = wasm_template(req)
        else:
            template = await self.templates.for_new_shell(principal, template)
        networks = [self.network.get_network(principal, name) for name in req.networks]
        if req.sync is not None:  # the bucket answers before anything is made (400 otherwise)
            if self.sync is None:
                raise FeatureUnavailable("Workspace sync is not available on this server.", {"field": "sync"})
            await self.sync.check(req.sync)
        placeholders = self._placeholders(principal, req)
        attachments = await self._attachments(principal, req, self.ctx.node_for(req.runtime, node))
        idle_timeout = self._idle_timeout(req, backend)
        auto_resume = self._auto_resume(req, backend)
        # No await from the quota check to the record's insert: concurrent creates cannot overshoot.
        self.ctx.quotas.check_shell(principal.tenant, get_shape(req.shape))
        if self.storage is not None:
            self.storage.claim(attachments)
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "tenant": principal.tenant,
            "owner": principal.id,
            "language": req.language,
            "env": {**req.env, **placeholders},
            "labels": req.labels,
            "idle_timeout_s": idle_timeout,
            "expires_at": None if req.timeout_s is None else now + timedelta(seconds=req.timeout_s),
            "on_timeout": req.on_timeout,
            "auto_resume": auto_resume,
            "created_at": now,
            "updated_at": now,
        }
        local = node.region == self.ctx.settings.region  # warm shells are this host's
        warm_fits = not networks and not placeholders and attachments.empty  # warm shells have none
        if local and req.snapshot is None and warm_fits:
            claimed = self.pool.claim(
                template=template, shape=req.shape, network=req.network, runtime=req.runtime
            )
            if claimed is not None:
                for k, v in fields.items():
                    setattr(claimed, k, v)
                claimed.name = req.name or claimed.id
                self.ctx.store.save_shell(
                    claimed,
                    self.ctx.draft(
                        principal, claimed, door=door, kind="create", action="create", details={"warm": True}
                    ),
                )
                if self.sync is not None and req.sync is not None:
                    self.sync.attach(claimed, req.sync)
                return claimed
        shell = ShellRecord(
            id=new_id("sh"),
            name="",
            state=ShellState.CREATING,
            runtime=req.runtime,
            template=template,
            network=req.network,
            shape=req.shape,
            region=node.region,
            node=self.ctx.node_for(req.runtime, node),
            source_snapshot=req.snapshot,
            **fields,
        )
        shell.name = req.name or shell.id
        self.ctx.store.add_shell(
            shell, self.ctx.draft(principal, shell, door=door, kind="create", action="create")
        )
        try:
            if self.sync is not None and req.sync is not None:
                self.sync.attach(shell, req.sync)
            for net in networks:  # recorded first, so the shell starts on them
                self.network.record_member(principal, net, shell, "", door)
            if self.secrets is not None and placeholders:  # recorded first, so its HTTPS is brokered
                self.secrets.give(shell.id, placeholders)
            if self.storage is not None and not attachments.empty:  # recorded first, so its start mounts them
                self.storage.attach(principal, shell, attachments, door)
            return await self.boot(principal, shell, door)
        except RecordUnavailable:
            self._abandon(shell)
            raise

    def _abandon(self, shell: ShellRecord) -> None:
        """Undo a create the record's database cut short after it recorded the shell, once the
        database answers again: the shell is deleted (on its node too) with the reason, so the
        retryable 503 leaves nothing half-made. A database still down after ``ABANDON_WAIT_S``
        leaves the row ``creating`` for a replica's start-up reconciliation to fail."""
        reason = "its create was refused: the record's database stopped answering meanwhile"
        draft = self.ctx.draft(
            None, shell, door="system", kind="state", action="create", outcome="deleted", message=reason
        )

        async def _run() -> None:
            deadline = asyncio.get_running_loop().time() + ABANDON_WAIT_S
            while True:
                try:
                    self.ctx.store.get_shell(shell.id)
                    break
                except RecordUnavailable:
                    if asyncio.get_running_loop().time() > deadline:
                        log.warning("shell %s stays 'creating': the record did not come back", shell.id)
                        return
                    await asyncio.sleep(ABANDON_RETRY_S)
            try:
                await self.remove(shell, reason, draft)
            except ShellsError as exc:
                log.warning("abandoning shell %s failed: %s", shell.id, exc.message)

        task = asyncio.get_running_loop().create_task(_run())
        self._reclaim.add(task)
        task.add_done_callback(self._reclaim.discard)

    def _placeholders(self, principal: Principal, req: CreateShellRequest) -> dict[str, str]:
        if not req.secrets:
            return {}
        if self.secrets is None:
            raise FeatureUnavailable("Secrets are not available on this server.", {"field": "secrets"})
        return self.secrets.placeholders(principal, req.secrets)

    async def _attachments(self, principal: Principal, req: CreateShellRequest, node: str) -> Attachments:
        if not req.buckets and not req.volumes:
            return Attachments()
        if self.storage is None:
            raise FeatureUnavailable("Bucket mounts and volumes are not available on this server.")
        return await self.storage.check(principal, req, node)

    def _idle_timeout(self, req: CreateShellRequest, backend: Backend) -> int | None:
        """The shell's idle timeout: the request's, else the instance's default where the class can
        pause; None (never) for classes that cannot, and for microvm shells with bucket mounts or
        volumes, which cannot be saved (docs/storage.md)."""
        shared_vm = req.runtime is Runtime.MICROVM and bool(req.buckets or req.volumes)
        if Capability.PAUSE not in backend.capabilities or shared_vm:
            if req.idle_timeout_s:
                what = "microvm shells with mounts or volumes" if shared_vm else f"{req.runtime} shells"
                raise FeatureUnavailable(
                    f"{what} cannot pause, so they cannot pause on idle; leave "
                    "'idle_timeout_s' out or use a class that can pause.",
                    {"field": "idle_timeout_s"},
                )
            return None
        if req.idle_timeout_s is None:
            return self.ctx.settings.idle_timeout_s or None
        return req.idle_timeout_s or None

    def _auto_resume(self, req: CreateShellRequest, backend: Backend) -> bool:
        """Wake on request: on unless asked off where the class can resume; never where it cannot."""
        if Capability.RESUME not in backend.capabilities:
            if req.auto_resume:
                raise FeatureUnavailable(
                    f"{req.runtime} shells cannot pause, so nothing can wake them; leave "
                    "'auto_resume' out or use a class that can pause.",
                    {"field": "auto_resume"},
                )
            return False
        return req.auto_resume is not False

    async def boot(self, principal: Principal | None, shell: ShellRecord, door: str) -> ShellRecord:
        """Build and start a shell that is in ``creating``; on failure it ends ``failed`` with the reason."""
        backend = self.ctx.backend(shell.runtime)
        try:
            spec = self.ctx.spec(shell)
            await backend.create(spec)
            if spec.brokered and self.secrets is not None:
                await self.secrets.trust_ca(shell)
        except ShellsError as exc:
            self.ctx.store.change_state(
                shell.id,
                ShellState.FAILED,
                exc.message,
                self.ctx.draft(
                    principal,
                    shell,
                    door=door,
                    kind="state",
                    action="create",
                    outcome="failed",
                    message=exc.message,
                ),
            )
            raise
        return self.ctx.store.change_state(
            shell.id,
            ShellState.RUNNING,
            "",
            self.ctx.draft(principal, shell, door=door, kind="state", action="create", outcome="running"),
        )

    # time-to-live ---------------------------------------------------------------------------------
    def set_timeout(
        self, principal: Principal, shell_id: str, timeout_s: int, door: str, *, extend_only: bool = False
    ) -> ShellRecord:
        """Move the shell's time-to-live to ``timeout_s`` from now (0: now); with ``extend_only`` a
        later expiry already set is kept."""
        shell = authorize(self.ctx.store, principal, shell_id, access.ACT)
        expires = datetime.now(UTC) + timedelta(seconds=timeout_s)
        if extend_only and (shell.expires_at is None or shell.expires_at >= expires):
            return shell
        shell.expires_at = expires
        details = {"timeout_s": timeout_s, "expires_at": expires.isoformat(), "on_timeout": shell.on_timeout}
        draft = self.ctx.draft(principal, shell, door=door, kind="action", action="timeout", details=details)
        self.ctx.store.save_shell(shell, draft)
        return shell

    # delete ---------------------------------------------------------------------------------------
    async def delete(self, principal: Principal, shell_id: str, door: str) -> None:
        """Mark the shell deleted now; the host objects are reclaimed in the background (and, after
        a crash, by reconciliation), so the caller never waits for subvolume deletion."""
        shell = authorize(self.ctx.store, principal, shell_id, access.DESTROY)
        if self.sync is not None:  # the bucket gets all of /workspace first, or nothing is deleted
            await self.sync.flush(shell, strict=True)
        draft = self.ctx.draft(principal, shell, door=door, kind="delete", action="delete")
        await self.remove(shell, "deleted by " + principal.id, draft)

    async def remove(self, shell: ShellRecord, reason: str, draft: EventDraft) -> None:
        """Delete ``shell`` (already authorized, or the system's own decision such as its time-to-live)."""
        if self.sync is not None:  # a last pass (a time-to-live's delete does not wait for the bucket)
            await self.sync.flush(shell, strict=False)
            self.sync.forget(shell.id)
        async with self.ctx.locks[shell.id]:
            self.ctx.store.change_state(shell.id, ShellState.DELETED, reason, draft)
        self.network.records.forget_shell(shell.id)
        if self.secrets is not None:
            self.secrets.forget_shell(shell.id)
        self.reclaim(shell)

    def reclaim(self, shell: ShellRecord) -> None:
        backend = self.ctx.backend(shell.runtime)

        async def _run() -> None:
            async with self.ctx.locks[shell.id]:
                try:
                    await backend.destroy(shell.id)
                except Exception:
                    log.exception("reclaiming shell %s failed; reconciliation will retry", shell.id)
                else:
                    if self.storage is not None:  # the volumes it wrote go to the object store
                        self.storage.released(shell)
            self.ctx.locks.pop(shell.id, None)

        task = asyncio.get_running_loop().create_task(_run())
        self._reclaim.add(task)
        task.add_done_callback(self._reclaim.discard)

    async def drain(self) -> None:
        if self._reclaim:
            await asyncio.gather(*self._reclaim, return_exceptions=True)

    # actions --------------------------------------------------------------------------------------
    async def act(
        self,
        principal: Principal,
        shell_id: str,
        capability: str,
        door: str,
        params: dict[str, Any] | None = None,
    ) -> tuple[ShellRecord, dict[str, Any]]:
        cap = parse_enum(Capability, capability, "capability")
        permission = access.READ if cap is Capability.LOGS else access.ACT
        shell = authorize(self.ctx.store, principal, shell_id, permission)
        backend = self.ctx.backend(shell.runtime)
        if cap not in backend.capabilities:
            raise ActionNotSupported(
                f"The {shell.runtime} isolation class does not support '{cap}' yet.",
                {"capability": cap.value, "runtime": shell.runtime.value},
            )
        async with self.ctx.locks[shell.id]:
            shell = authorize(self.ctx.store, principal, shell_id, permission)
            if shell.state not in ALLOWED_STATES[cap]:
                raise InvalidState(
                    f"'{cap}' is not allowed while the shell is {shell.state}.",
                    {"capability": cap.value, "state": shell.state.value},
                )
            try:
                saving = (
                    self.sync.around_save(shell)
                    if self.sync is not None and cap in SYNC_BEFORE
                    else contextlib.nullcontext()
                )
                with self._inflight.recording(shell.id, cap, principal.id):
                    async with saving:
                        shell, result = await self._do(principal, shell, cap, door, params or {})
                if self.sync is not None and cap in SYNC_COMPLETELY:
                    await self.sync.flush(shell, strict=False)
                if self.storage is not None and cap is Capability.STOP:
                    self.storage.released(shell)
            except ShellsError as exc:
                draft = self._action_draft(
                    principal, shell, door, cap, "error", exc.message, {"code": exc.code}
                )
                self.ctx.store.add_event(draft)
                raise
        return shell, result

    def _action_draft(
        self,
        principal: Principal,
        shell: ShellRecord,
        door: str,
        cap: Capability,
        outcome: str = "ok",
        message: str = "",
        details: dict[str, Any] | None = None,
    ) -> EventDraft:
        """The audit event of one action; destructive ones say so."""
        return self.ctx.draft(
            principal,
            shell,
            door=door,
            kind="action",
            action=cap.value,
            outcome=outcome,
            message=message,
            details={"destructive": cap in DESTRUCTIVE, **(details or {})},
        )

    async def _do(
        self, principal: Principal, shell: ShellRecord, cap: Capability, door: str, params: dict[str, Any]
    ) -> tuple[ShellRecord, dict[str, Any]]:
        backend = self.ctx.backend(shell.runtime)
        spec = self.ctx.spec(shell)

        def state(target: ShellState, reason: str = "") -> ShellRecord:
            draft = self._action_draft(principal, shell, door, cap, target.value)
            return self.ctx.store.change_state(shell.id, target, reason, draft)

        def done(result: dict[str, Any] | None = None) -> tuple[ShellRecord, dict[str, Any]]:
            self.ctx.store.add_event(self._action_draft(principal, shell, door, cap))
            return shell, result or {}

        match cap:
            case Capability.LOGS:
                data = await backend.logs(shell.id, parse_log_bytes(params, MAX_LOG_BYTES))
                return done({"logs": data.decode(errors="replace")})
            case Capability.STOP:
                await backend.stop(shell.id)
                return self.ctx.rested(state(ShellState.STOPPED, "stopped by " + principal.id)), {}
            case Capability.START:
                self.ctx.quotas.check_budget(shell.tenant)
                await backend.start(spec)
                return state(ShellState.RUNNING), {}
            case Capability.RESTART:
                with self.ctx.restarts.running(shell.id):  # requests wait for it (control.restarts)
                    await backend.stop(shell.id)
                    reached("lifecycle.restart.stopped")
                    await backend.start(spec)
                if shell.state is ShellState.RUNNING:
                    return done()
                return state(ShellState.RUNNING), {}
            case Capability.REINSTALL_OS | Capability.WIPE_STATE:
                await backend.reset(spec, wipe_workspace=cap is Capability.WIPE_STATE)
                if spec.brokered and self.secrets is not None:  # fresh OS files: trust the CA again
                    await self.secrets.trust_ca(shell)
                return done()
            case Capability.PAUSE:
                return await self.suspension.pause(principal, shell, door, "paused by " + principal.id), {}
            case Capability.RESUME:
                return await self.suspension.resume(principal, shell, door, "resumed by " + principal.id), {}
            case Capability.FORK:
                count = parse_fork_count(params)
                children = await fork_shell(self.ctx, self.suspension, principal, shell, door, count)
                draft = self._action_draft(
                    principal, shell, door, cap, details={"children": [c.id for c in children]}
                )
                self.ctx.store.add_event(draft)
                return shell, {"shells": [self.ctx.public(c) for c in children]}
            case Capability.SNAPSHOT:
                snap = SnapshotRecord(
                    id=new_id("snap"),
                    tenant=shell.tenant,
                    shell_id=shell.id,
                    runtime=shell.runtime,
                    template=shell.template,
                    language=shell.language,
                    created_at=datetime.now(UTC),
                    name=str(params.get("name", "")),
                )
                with self.ctx.quotas.snapshot_slot(shell.tenant):
                    await backend.snapshot(shell.id, snap.id)
                    self.ctx.store.add_snapshot(
                        snap,
                        self._action_draft(principal, shell, door, cap, details={"snapshot": snap.id}),
                    )
                if self.durable is not None:
                    self.durable.upload_snapshot_later(snap)
                return shell, {"snapshot": snap.to_public()}
            case _:
                raise ActionNotSupported(f"'{cap}' is not implemented for {shell.runtime} shells yet.")
