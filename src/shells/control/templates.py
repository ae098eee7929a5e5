"""Use cases for templates: list, resolve, build (streamed), save a shell, delete.

Templates belong to the container class's backend (the only one today). A template record exists
only for a template whose bits are complete on the host; built-ins that are not built yet are listed
from the catalog with status ``not_built``. Built-ins are everyone's (tenant ``""``); spec-built and
saved templates belong to the tenant that made them and are invisible to others. Names are unique
per instance.

Name lookups without a tag (``python``) resolve to the highest tag of that name the caller can use,
numeric tags compared as numbers (``10`` > ``9``), a ready template winning over a built-in that is
not built yet. Creating a template always needs the tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ..domain import access
from ..domain.access import TENANT_ADMIN
from ..domain.errors import (
    InvalidRequest,
    InvalidState,
    PermissionDenied,
    TemplateExists,
    TemplateInUse,
    TemplateNotFound,
)
from ..domain.isolation import DEFAULT_RUNTIME
from ..domain.principal import Principal, Scope
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..domain.templates import (
    DEFAULT_WORKDIR,
    BuildEvent,
    BuildOutput,
    BuildProgress,
    BuildStepStarted,
    TemplateKind,
    TemplateMeta,
    TemplateRecord,
    TemplateSpec,
    TemplateStatus,
    content_identity,
    parse_spec,
    parse_template_name,
    split_template_name,
    tag_order,
)
from ..runtime.backend import Backend
from ..runtime.templates.builder import TemplateBuilder
from ..runtime.templates.catalog import builtins
from ..store.repository import EventDraft
from ..store.templates import TemplateStore
from .auth import authorize, is_platform_admin, require
from .context import ControlContext
from .durable import Durable

log = logging.getLogger(__name__)

OUTPUT_FLUSH_S = 0.25
OUTPUT_FLUSH_CHARS = 16 * 1024
"""Build output is passed on at most every OUTPUT_FLUSH_S, or sooner once this much is waiting."""


@dataclass(frozen=True)
class BuildFinished:
    """The last update of a build: the template, and whether it was already there (no work done)."""

    template: TemplateRecord
    cached: bool
    seconds: float


BuildUpdate = BuildStepStarted | BuildOutput | BuildFinished


@dataclass(frozen=True)
class BuildRequest:
    """``{"spec": "<TOML>"}`` or ``{"builtin": "rust:1"}``."""

    spec: TemplateSpec | None = None
    spec_text: str = ""
    builtin: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> BuildRequest:
        _known(body, {"spec", "builtin"})
        if ("spec" in body) == ("builtin" in body):
            raise InvalidRequest(
                'Send exactly one of {"spec": "<TOML text>"} or {"builtin": "rust:1"}.', {"field": "spec"}
            )
        if "builtin" in body:
            name = body["builtin"]
            if not isinstance(name, str) or name not in builtins():
                raise InvalidRequest(
                    f"'builtin' must name a built-in template: {', '.join(builtins())}.",
                    {"field": "builtin"},
                )
            return cls(builtin=name)
        text = body["spec"]
        if not isinstance(text, str):
            raise InvalidRequest("'spec' must be the TOML text of a template spec.", {"field": "spec"})
        return cls(spec=parse_spec(text), spec_text=text)


@dataclass(frozen=True)
class SaveRequest:
    """``{"from_shell": id, "name": "myenv:1", "include_workspace": false}``."""

    shell_id: str
    name: str
    include_workspace: bool = False

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> SaveRequest:
        _known(body, {"from_shell", "name", "include_workspace"})
        shell_id = body.get("from_shell")
        if not isinstance(shell_id, str) or not shell_id:
            raise InvalidRequest("'from_shell' must be the id of a running shell.", {"field": "from_shell"})
        include = body.get("include_workspace", False)
        if not isinstance(include, bool):
            raise InvalidRequest("'include_workspace' must be true or false.", {"field": "include_workspace"})
        return cls(shell_id, parse_template_name(body.get("name"), "name"), include)


def _known(body: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}.",
            {"fields": unknown},
        )


class Templates:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.records = TemplateStore(ctx.store)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._defaults: dict[str, tuple[dict[str, str], str, str | None]] = {}
        self.durable: Durable | None = None
        """Where templates made here are kept for other machines (docs/storage.md); set by Control."""

    @property
    def backend(self) -> Backend:
        return self.ctx.backend(DEFAULT_RUNTIME)

    # start-up -------------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Records follow the host: register built-ins found on it, forget records whose bits are gone,
        and remove templates nobody recorded (a build or save interrupted by a crash)."""
        on_host = {m.name: m for m in self.backend.list_templates()}
        for rec in self.records.list(None):
            if rec.name not in on_host and rec.durable_at is None:
                log.warning("template %s is no longer on the host; forgetting its record", rec.name)
                self.records.delete(rec.name)
        recorded = {r.name for r in self.records.list(None)}
        for name, meta in on_host.items():
            if name in recorded:
                continue
            if meta.kind is TemplateKind.BUILTIN and name in builtins():
                self._register_builtin(TemplateRecord(meta, TemplateStatus.READY))
            else:
                log.warning("removing template %s found on the host without a record", name)
                await self.backend.delete_template(name)

    def _register(self, rec: TemplateRecord, spec: str = "", draft: EventDraft | None = None) -> None:
        self.records.add(rec, spec, draft)
        if self.durable is not None:
            self.durable.upload_template_later(rec)
        self._defaults.pop(rec.name, None)

    def _register_builtin(self, rec: TemplateRecord) -> TemplateRecord:
        """Record a built-in found on a node; the record another control replica made of it at the
        same moment, if it did."""
        try:
            self._register(rec)
        except TemplateExists:
            return self.records.get(rec.meta.name) or rec
        return rec

    def _draft(
        self,
        principal: Principal,
        door: str,
        action: str,
        name: str,
        shell: ShellRecord | None = None,
        **details: Any,
    ) -> EventDraft:
        return self.ctx.draft(
            principal,
            shell,
            door=door,
            kind="template",
            action=action,
            details={"template": name, **details},
            tenant=principal.tenant,
        )

    # reads ----------------------------------------------------------------------------------------
    def list(self, principal: Principal) -> list[TemplateRecord]:
        require(principal, Scope.READ)
        found = {
            r.name: r
            for r in self.records.list(principal.tenant)
            if r.meta.kind is not TemplateKind.BUILD_STEP
        }
        for name, b in builtins().items():
            found.setdefault(name, TemplateRecord(b.meta(), TemplateStatus.NOT_BUILT))
        return [found[n] for n in sorted(found)]

    def get(self, principal: Principal, ref: str) -> TemplateRecord:
        require(principal, Scope.READ)
        name = self.resolve(principal, ref)
        rec = self._visible(principal, name)
        if rec is not None:
            return rec
        return TemplateRecord(builtins()[name].meta(), TemplateStatus.NOT_BUILT)

    def _visible(self, principal: Principal, name: str) -> TemplateRecord | None:
        rec = self.records.get(name)
        return rec if rec is not None and rec.tenant in ("", principal.tenant) else None

    def resolve(self, principal: Principal, ref: object, key: str = "template") -> str:
        """The full name ``ref`` means to ``principal`` (see the module docstring), or TemplateNotFound."""
        name, tag = split_template_name(ref, key)
        if tag is not None:
            full = f"{name}:{tag}"
            if self._visible(principal, full) is None and full not in builtins():
                raise TemplateNotFound(
                    f"Template '{full}' does not exist; GET /v1/templates lists the ones you can use.",
                    {key: full},
                )
            return full
        ready = [r.name for r in self.records.list(principal.tenant) if r.name.partition(":")[0] == name]
        candidates = ready or [b for b in builtins() if b.partition(":")[0] == name]
        if not candidates:
            raise TemplateNotFound(
                f"No template is named '{name}'; GET /v1/templates lists the ones you can use.", {key: name}
            )
        return max(candidates, key=tag_order)

    def exec_defaults(self, name: str) -> tuple[dict[str, str], str]:
        """(env, workdir) of template ``name`` for commands run in its shells (cached; records are
        immutable once made)."""
        env, workdir, _ = self._run_defaults(name)
        return env, workdir

    def exec_user(self, name: str) -> str | None:
        """Who runs commands and terminals in shells of template ``name``: an image's ``User``."""
        return self._run_defaults(name)[2]

    def _run_defaults(self, name: str) -> tuple[dict[str, str], str, str | None]:
        found = self._defaults.get(name)
        if found is None:
            rec = self.records.get(name)
            if rec is None:
                found = ({}, DEFAULT_WORKDIR, None)
            else:
                user = rec.meta.image.user if rec.meta.image is not None else None
                found = (dict(rec.meta.env), rec.meta.workdir, user)
            self._defaults[name] = found
        return found

    # shells need a ready template -----------------------------------------------------------------
    async def for_new_shell(self, principal: Principal, ref: str) -> str:
        """The full name of a ready template for a new shell. A built-in that is not ready is imported
        when this host has it cached (seconds); one that would have to be built is refused with
        TemplateNotBuilt saying how to build it, so creating a shell never waits minutes silently."""
        name = self.resolve(principal, ref)
        rec = self._visible(principal, name)
        if rec is not None and self.backend.template_meta(name) is not None:
            return name
        if rec is not None and rec.durable_at is not None and self.durable is not None:
            await self.durable.ensure_template_here(rec)  # made on another machine
            return name
        await self._ensure_builtin(name, None, allow_build=False)
        return name

    async def _ensure_builtin(
        self, name: str, progress: BuildProgress | None, *, allow_build: bool = True
    ) -> TemplateRecord:
        meta = await self.backend.ensure_template(name, progress, allow_build=allow_build)
        rec = self.records.get(name)
        if rec is None:
            rec = self._register_builtin(TemplateRecord(meta, TemplateStatus.READY))
        return rec

    # build ----------------------------------------------------------------------------------------
    async def build(self, principal: Principal, req: BuildRequest, door: str) -> AsyncIterator[BuildUpdate]:
        """Check the request, then return the build's updates. Problems with the request (bad spec,
        unknown parent, name taken) raise here, before the caller starts streaming; a failing step
        raises TemplateBuildFailed from the stream."""
        require(principal, Scope.CREATE)
        if req.builtin is not None:
            name = req.builtin

            async def builtin(report: BuildProgress) -> tuple[TemplateRecord, bool]:
                ready = self.records.get(name)
                if ready is not None and self.backend.template_meta(name) is not None:
                    return ready, True
                return await self._ensure_builtin(name, report), False

            return self._stream(name, builtin)
        spec = req.spec
        assert spec is not None
        parent_name = self.resolve(principal, spec.parent, "parent")
        self._check_name_free(principal, spec.name, reuse_spec=True)

        async def work(report: BuildProgress) -> tuple[TemplateRecord, bool]:
            self._check_name_free(principal, spec.name, reuse_spec=True)
            parent = self.records.get(parent_name) or await self._ensure_builtin(
                parent_name, _prefixed(report, parent_name)
            )
            identity = content_identity(spec, parent.meta.content_hash)
            current = self.records.get(spec.name)
            if current is not None:
                if current.meta.content_hash != identity:
                    raise TemplateExists(
                        f"Template '{spec.name}' exists with other content; delete it or use a new tag.",
                        {"name": spec.name},
                    )
                return current, True
            try:
                meta = await TemplateBuilder(self.backend).build(
                    name=spec.name,
                    kind=TemplateKind.SPEC,
                    content_hash=identity,
                    spec=spec,
                    parent=parent.meta,
                    progress=report,
                )
            except BaseException:
                with anyio.CancelScope(shield=True):  # captured, then interrupted: not half-registered
                    if self.records.get(spec.name) is None and self.backend.template_meta(spec.name):
                        await self.backend.delete_template(spec.name)
                raise
            rec = TemplateRecord(meta, TemplateStatus.READY, tenant=principal.tenant, owner=principal.id)
            self._register(rec, req.spec_text, self._draft(principal, door, "build", spec.name))
            return rec, False

        return self._stream(spec.name, work)

    def _check_name_free(self, principal: Principal, name: str, *, reuse_spec: bool = False) -> None:
        """TemplateExists unless ``name`` is free; with ``reuse_spec``, the caller's own spec-built
        template of that name passes too (a rebuild of the same spec is then answered as cached)."""
        rec = self.records.get(name)
        if name in builtins() or (
            rec is not None
            and not (reuse_spec and rec.meta.kind is TemplateKind.SPEC and rec.tenant == principal.tenant)
        ):
            raise TemplateExists(f"The name '{name}' is taken; choose another name or tag.", {"name": name})

    async def _stream(
        self, name: str, work: Callable[[BuildProgress], Awaitable[tuple[TemplateRecord, bool]]]
    ) -> AsyncIterator[BuildUpdate]:
        """Run ``work`` (holding the name's lock) in a task; pass its progress on, output coalesced.
        Closing the stream early cancels the build, which removes everything it made."""
        started = time.monotonic()
        events: asyncio.Queue[BuildEvent] = asyncio.Queue()

        async def locked() -> tuple[TemplateRecord, bool]:
            async with self._locks[name]:
                return await work(events.put_nowait)

        task = asyncio.get_running_loop().create_task(locked())
        pending: list[str] = []
        size, flushed = 0, time.monotonic()
        try:
            while not (task.done() and events.empty()):
                try:
                    event: BuildEvent | None = await asyncio.wait_for(events.get(), OUTPUT_FLUSH_S)
                except TimeoutError:
                    event = None
                if isinstance(event, BuildOutput):
                    pending.append(event.data)
                    size += len(event.data)
                    if size < OUTPUT_FLUSH_CHARS and time.monotonic() - flushed < OUTPUT_FLUSH_S:
                        continue
                if pending:
                    yield BuildOutput("".join(pending))
                    pending, size, flushed = [], 0, time.monotonic()
                if isinstance(event, BuildStepStarted):
                    yield event
            if pending:  # output that arrived just before the work ended
                yield BuildOutput("".join(pending))
            record, cached = await task
            yield BuildFinished(record, cached, round(time.monotonic() - started, 1))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # save -----------------------------------------------------------------------------------------
    async def save(self, principal: Principal, req: SaveRequest, door: str) -> TemplateRecord:
        """Capture a running shell's root filesystem (and /workspace if asked) as a new template."""
        shell = authorize(self.ctx.store, principal, req.shell_id, access.SAVE)
        async with self._locks[req.name]:
            self._check_name_free(principal, req.name)
            async with self.ctx.locks[shell.id]:
                shell = authorize(self.ctx.store, principal, req.shell_id, access.SAVE)
                if shell.state is not ShellState.RUNNING:
                    raise InvalidState(
                        f"Only a running shell can be saved as a template; this one is {shell.state}.",
                        {"state": shell.state.value},
                    )
                env, workdir = self.exec_defaults(shell.template)
                parent = self.records.get(shell.template)
                meta = TemplateMeta(
                    name=req.name,
                    kind=TemplateKind.SAVED,
                    parent=shell.template,
                    content_hash=secrets.token_hex(32),  # a saved template is its own identity
                    env={**env, **shell.env},
                    workdir=workdir,
                    versions=dict(parent.meta.versions) if parent else {},
                    image=parent.meta.image if parent else None,  # an image's user runs it still
                )
                meta = await self.ctx.backend(shell.runtime).capture_template(
                    shell.id, meta, req.include_workspace
                )
            rec = TemplateRecord(meta, TemplateStatus.READY, tenant=principal.tenant, owner=principal.id)
            draft = self._draft(
                principal, door, "save", req.name, shell, include_workspace=req.include_workspace
            )
            self._register(rec, "", draft)
            return rec

    # delete ---------------------------------------------------------------------------------------
    async def delete(self, principal: Principal, ref: str, door: str) -> None:
        require(principal, Scope.DESTROY)
        name = parse_template_name(ref, "name")
        async with self._locks[name]:
            rec = self._visible(principal, name)
            if rec is None:
                raise TemplateNotFound(f"Template '{name}' does not exist (or is not built).", {"name": name})
            if rec.tenant == "" and not is_platform_admin(principal):
                raise PermissionDenied(
                    "Built-in templates are shared by every tenant; deleting one needs 'platform.admin'.",
                    {"scope": Scope.PLATFORM_ADMIN},
                )
            if rec.tenant != "" and rec.owner != principal.id and not principal.has(TENANT_ADMIN):
                raise PermissionDenied(
                    f"Template '{name}' belongs to {rec.owner}; only its maker or a tenant admin may "
                    "delete it.",
                    {"owner": rec.owner},
                )
            user = self.records.first_user(name)
            if user is not None:
                raise TemplateInUse(
                    f"Template '{name}' is still used by {user}; delete that first.",
                    {"name": name, "used_by": user},
                )
            for pooled in self.ctx.store.list_shells(None, pooled=True):
                if pooled.template == name:  # pre-started shells nobody owns: not users
                    self.ctx.store.purge_shell(pooled.id)
                    await self.ctx.backend(pooled.runtime).destroy(pooled.id)
            self.records.delete(name, self._draft(principal, door, "delete", name))
            self._defaults.pop(name, None)
            await self.backend.delete_template(name)
            if self.durable is not None:
                await self.durable.collect(rec.parts)


def _prefixed(report: BuildProgress, parent: str) -> BuildProgress:
    """Report a parent's build inside a child's stream, its step names prefixed with the parent."""

    def nested(event: BuildEvent) -> None:
        if isinstance(event, BuildStepStarted):
            event = BuildStepStarted(event.index, event.total, f"{parent}: {event.name}")
        report(event)

    return nested
