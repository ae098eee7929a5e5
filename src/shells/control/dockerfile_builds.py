"""Build a template from a Dockerfile and its context, with a step cache keyed by content.

Each instruction extends a key: sha256 of the previous key and what the instruction does (its text
after ARG/ENV substitution, the env, user and workdir a RUN sees, the content of the files a COPY
sends). The FROM template's identity and the tenant start the chain, so a cached step is only ever
reused by its own tenant. After every step that changes files (RUN, COPY, ADD, WORKDIR) the build
shell is captured as a hidden ``build_step`` template named by the key; a later build walks its
instructions, skips every step whose template exists, and starts its build shell from the last one,
so an unchanged prefix is not rebuilt. The result's identity is the last key: the same Dockerfile
and context built again under the same name is answered as cached.

Steps run in a build shell exactly like a spec build's (isolated, outbound network), RUN as the
Dockerfile's USER. A step that fails is ``TemplateBuildFailed`` naming the step and its line;
nothing but the cached steps before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ..domain.dockerfile import Instruction, command, copy_args, pairs, parse_dockerfile, substitute
from ..domain.errors import InvalidRequest, InvalidTemplateName, TemplateExists, TemplateNotFound
from ..domain.execution import ExecSpec
from ..domain.limits import DOCKERFILE_MAX_BYTES
from ..domain.oci import host_platform, parse_image_ref
from ..domain.principal import Principal, Scope
from ..domain.templates import (
    BuildOutput,
    BuildProgress,
    BuildStepStarted,
    ImageInfo,
    TemplateKind,
    TemplateMeta,
    TemplateRecord,
    TemplateStatus,
    parse_template_name,
)
from ..runtime.oci.importer import resolve
from ..runtime.oci.registry import Credentials, RegistryClient
from ..runtime.templates.build_context import BuildContext, copy_in, sources_key
from ..runtime.templates.builder import STEP_TIMEOUT_S, TemplateBuilder
from ..runtime.templates.catalog import builtins
from .auth import require
from .image_templates import ImageTemplates, ImportRequest
from .templates import BuildUpdate, Templates, _prefixed

FORMAT = "dockerfile/1"
STEP_PREFIX = "dfstep-"
FS_STEPS = ("RUN", "COPY", "ADD", "WORKDIR")


@dataclass
class _State:
    """What the instructions so far have set."""

    env: dict[str, str]
    workdir: str
    user: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    labels: dict[str, str]
    args: dict[str, str] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, str]:
        return {**self.args, **self.env}


def _chain(key: str, *parts: object) -> str:
    return hashlib.sha256(json.dumps([key, *parts], sort_keys=True).encode()).hexdigest()


class DockerfileBuilds:
    def __init__(self, templates: Templates, images: ImageTemplates) -> None:
        self.templates = templates
        self.images = images
        self.scratch = templates.ctx.settings.data_dir / "build-contexts"
        shutil.rmtree(self.scratch, ignore_errors=True)  # contexts of builds a crash cut short

    async def build(
        self,
        principal: Principal,
        name: str,
        context_tar: Path,
        dockerfile: str,
        door: str,
        credentials: Credentials | None = None,
    ) -> AsyncIterator[BuildUpdate]:
        """Check the request (name, Dockerfile, FROM: a plain 4xx before anything streams), unpack
        the context, and return the build's updates; the context is removed when they end."""
        require(principal, Scope.CREATE)
        name = parse_template_name(name, "name")
        t = self.templates
        rec = t.records.get(name)
        if name in builtins() or (
            rec is not None
            and not (rec.tenant == principal.tenant and rec.meta.kind is TemplateKind.DOCKERFILE)
        ):
            raise TemplateExists(f"The name '{name}' is taken; choose another name or tag.", {"name": name})
        where = self.scratch / os.urandom(8).hex()
        ctx = await anyio.to_thread.run_sync(BuildContext.unpack, context_tar, where)
        try:
            text = ctx.read_text(dockerfile, DOCKERFILE_MAX_BYTES)
            if text is None:
                raise InvalidRequest(
                    f"The build context has no Dockerfile at {dockerfile!r} (or it is a link or too large).",
                    {"field": "dockerfile"},
                )
            instructions = parse_dockerfile(text)
            base = await self._base(principal, instructions[0], credentials, door)
        except BaseException:
            ctx.remove()
            raise

        async def work(report: BuildProgress) -> tuple[TemplateRecord, bool]:
            if isinstance(base, str):
                parent = t.records.get(base) or await t._ensure_builtin(base, report)
            else:
                parent, _ = await base(_prefixed(report, "FROM"))
            return await self._run(principal, door, name, instructions, parent, ctx, report)

        return _removing(ctx, t._stream(name, work))

    async def _base(
        self, principal: Principal, ins: Instruction, credentials: Credentials | None, door: str
    ) -> str | Callable[[BuildProgress], Awaitable[tuple[TemplateRecord, bool]]]:
        """What FROM names: a template the caller can use (its name), or else an image in a registry
        (``host/repo:tag``), resolved now and imported by the build as ``from-<digest>:1``, a template
        of the caller's tenant (the same image is imported once)."""
        try:
            return self.templates.resolve(principal, ins.text, "from")
        except (TemplateNotFound, InvalidTemplateName):
            first = ins.text.partition("/")[0]
            if "/" not in ins.text or not ("." in first or ":" in first or first == "localhost"):
                raise
        ref = parse_image_ref(ins.text, "from")
        probe = RegistryClient(ref, credentials, self.images.tls)
        async with probe:
            digest = (await resolve(probe, ref, host_platform(platform.machine()))).digest
        req = ImportRequest(ref, f"from-{digest[7:31]}:1", credentials)
        return await self.images.importer(principal, req, door)

    async def _run(
        self,
        principal: Principal,
        door: str,
        name: str,
        instructions: list[Instruction],
        parent: TemplateRecord,
        ctx: BuildContext,
        report: BuildProgress,
    ) -> tuple[TemplateRecord, bool]:
        t = self.templates
        image = parent.meta.image
        state = _State(
            env=dict(parent.meta.env),
            workdir=parent.meta.workdir,
            user=image.user if image else None,
            entrypoint=image.entrypoint if image else (),
            cmd=image.cmd if image else (),
            labels=dict(image.labels) if image else {},
        )
        key = _chain(FORMAT, principal.tenant, parent.meta.content_hash)
        total = len(instructions) + 1
        report(BuildStepStarted(1, total, f"FROM {parent.name}"))
        builder = TemplateBuilder(t.backend)
        base, host_id = parent.name, None
        try:
            for index, ins in enumerate(instructions[1:], start=2):
                report(BuildStepStarted(index, total, _short(ins.source)))
                key, files = self._apply(ins, state, ctx, key)
                if ins.keyword not in FS_STEPS:
                    continue
                step_name = f"{STEP_PREFIX}{key[:24]}:1"
                cached = t.records.get(step_name)
                if host_id is None and cached is not None and cached.tenant == principal.tenant:
                    base = step_name
                    report(BuildOutput(f"line {ins.line}: cached\n"))
                    continue
                if host_id is None:
                    host_id = await builder.start_shell(base)
                where = {"index": index, "total": total, "name": _short(ins.source), "line": ins.line}
                await self._step(builder, host_id, ins, state, files, where, report)
                if cached is None:
                    step = self._meta(step_name, TemplateKind.BUILD_STEP, key, state, parent)
                    step = await builder.capture(host_id, step, keep_workspace=parent.meta.has_workspace)
                    t._register(TemplateRecord(step, TemplateStatus.READY, principal.tenant, principal.id))
            report(BuildStepStarted(total, total, f"save the template {name}"))
            current = t.records.get(name)
            if current is not None:
                if current.meta.content_hash != key:
                    raise TemplateExists(
                        f"Template '{name}' exists with other content; delete it or use a new tag.",
                        {"name": name},
                    )
                return current, True
            meta = self._meta(name, TemplateKind.DOCKERFILE, key, state, parent)
            try:
                if host_id is not None:
                    meta = await builder.capture(host_id, meta, keep_workspace=parent.meta.has_workspace)
                else:
                    storage = self.images.storage
                    meta = await anyio.to_thread.run_sync(storage.clone, base, meta)
                rec = TemplateRecord(meta, TemplateStatus.READY, tenant=principal.tenant, owner=principal.id)
                t._register(rec, "", t._draft(principal, door, "build", name, dockerfile=True))
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if t.records.get(name) is None and t.backend.template_meta(name):
                        await t.backend.delete_template(name)
                raise
            return rec, False
        finally:
            if host_id is not None:
                with anyio.CancelScope(shield=True):
                    await t.backend.destroy(host_id)

    def _apply(self, ins: Instruction, state: _State, ctx: BuildContext, key: str) -> tuple[str, list[Any]]:
        """Update ``state`` with ``ins`` and extend the key; the COPY sources, if any."""
        files: list[Any] = []
        k = ins.keyword
        if k == "ARG":
            for arg, value in pairs(ins, state.variables).items():
                state.args.setdefault(arg, value)
        elif k == "ENV":
            state.env.update(pairs(ins, state.variables))
        elif k == "LABEL":
            state.labels.update(pairs(ins, state.variables))
        elif k == "USER":
            state.user = substitute(ins, ins.text, state.variables).strip() or None
        elif k == "ENTRYPOINT":
            state.entrypoint = command(ins)
        elif k == "CMD":
            state.cmd = command(ins)
        elif k == "WORKDIR":
            path = substitute(ins, ins.text, state.variables).strip()
            state.workdir = posixpath.normpath(posixpath.join(state.workdir, path))
            return _chain(key, k, state.workdir), files
        elif k == "RUN":
            run = (command(ins), state.variables, state.user, state.workdir)
            return _chain(key, k, *run), files
        else:  # COPY, ADD
            sources, dest = copy_args(ins, state.variables)
            files = ctx.sources(ins, sources, substitute(ins, dest, state.variables), state.workdir)
            return _chain(key, k, sources_key(files)), files
        return _chain(key, k, ins.text, state.variables), files

    async def _step(
        self,
        builder: TemplateBuilder,
        host_id: str,
        ins: Instruction,
        state: _State,
        files: list[Any],
        where: dict[str, object],
        report: BuildProgress,
    ) -> None:
        backend = self.templates.backend
        if ins.keyword == "WORKDIR":
            await backend.mkdir(host_id, state.workdir)
        elif ins.keyword == "RUN":
            await backend.mkdir(host_id, state.workdir)
            spec = ExecSpec(
                argv=command(ins),
                env=state.variables,
                cwd=state.workdir,
                timeout_s=STEP_TIMEOUT_S,
                user=state.user,
            )
            await builder.run_step(host_id, spec, where, report)
        else:
            await copy_in(backend, host_id, files)

    @staticmethod
    def _meta(name: str, kind: TemplateKind, key: str, state: _State, parent: TemplateRecord) -> TemplateMeta:
        return TemplateMeta(
            name=name,
            kind=kind,
            parent=parent.name if kind is TemplateKind.DOCKERFILE else None,
            content_hash=key,
            env=dict(state.env),
            workdir=state.workdir,
            versions=dict(parent.meta.versions),
            image=ImageInfo(
                source="Dockerfile",
                user=state.user,
                entrypoint=state.entrypoint,
                cmd=state.cmd,
                labels=dict(state.labels),
            ),
        )


async def _removing(ctx: BuildContext, updates: AsyncIterator[BuildUpdate]) -> AsyncIterator[BuildUpdate]:
    try:
        async for update in updates:
            yield update
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
        ctx.remove()


def _short(text: str, limit: int = 72) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
