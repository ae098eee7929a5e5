"""Make built-in templates ready on one host: import them from the host cache, or build them.

``base:1`` comes from debootstrap on the host (trusted Debian packages, cached as a tarball); every
other built-in is built from its spec in a build shell (see ``builder``) on top of its parent, which is
made ready first. A built result is packed into the host cache (``~/.cache/shells/templates``), so
another instance on the host imports it in seconds instead of building it again.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import anyio

from ...domain.errors import ShellsError, TemplateNotBuilt, TemplateNotFound
from ...domain.isolation import DEFAULT_LANGUAGE, PRESET_TEMPLATES
from ...domain.templates import BuildEvent, BuildProgress, BuildStepStarted, TemplateKind, TemplateMeta
from ..backend import Backend
from ..images import build_rootfs_tarball
from .builder import TemplateBuilder
from .catalog import BASE_ROOTFS, MEASURED_BUILD_S, Builtin, artifact, builtins


class TemplateArchive(Protocol):
    """What a backend's template storage offers for built-ins: read, import and export tarballs."""

    def meta(self, name: str) -> TemplateMeta | None: ...

    def import_tarball(self, tarball: Path, meta: TemplateMeta) -> TemplateMeta: ...

    def export_tarball(self, name: str, tarball: Path) -> None: ...


def _ignore(_: BuildEvent) -> None:
    pass


class BuiltinTemplates:
    def __init__(self, backend: Backend, archive: TemplateArchive, cache_dir: Path) -> None:
        self.backend = backend
        self.archive = archive
        self.cache_dir = Path(cache_dir)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def ensure(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        """The template ``name``, ready; a built-in is imported or built (one build per name at a time).
        Without ``allow_build`` only an import is done; a build is refused with TemplateNotBuilt."""
        meta = self.archive.meta(name)
        if meta is not None:
            return meta
        builtin = builtins().get(name)
        if builtin is None:
            raise TemplateNotFound(f"Template '{name}' is not on this host.", {"template": name})
        if not allow_build and not self._cached(builtin):
            raise TemplateNotBuilt(
                f"The built-in template '{name}' is not built on this server yet. Build it first (about "
                f"{MEASURED_BUILD_S[name]} s on a 2-core host): `shells template build {name}`, or "
                f'POST /v1/templates/build {{"builtin": "{name}"}}.',
                {"template": name, "estimated_seconds": MEASURED_BUILD_S[name]},
            )
        async with self._locks[name]:
            return self.archive.meta(name) or await self._provide(builtin, progress or _ignore)

    def _cached(self, builtin: Builtin) -> bool:
        """Whether this host can make ``builtin`` ready without building (an import of seconds)."""
        if builtin.spec is None:
            return (self.cache_dir / BASE_ROOTFS.tarball_name()).exists()
        tarball = artifact(self.cache_dir, builtin)
        return tarball.with_name(tarball.name + ".json").exists()

    async def _provide(self, builtin: Builtin, report: BuildProgress) -> TemplateMeta:
        if builtin.spec is None or builtin.parent is None:  # base:1
            report(BuildStepStarted(1, 2, "debootstrap Debian (cached on this host after the first time)"))
            tarball = await anyio.to_thread.run_sync(build_rootfs_tarball, self.cache_dir, BASE_ROOTFS)
            report(BuildStepStarted(2, 2, f"import {tarball.name}"))
            return await anyio.to_thread.run_sync(self.archive.import_tarball, tarball, builtin.meta())
        tarball = artifact(self.cache_dir, builtin)
        if self._cached(builtin):  # built before on this host, by this or another instance
            described = tarball.with_name(tarball.name + ".json")
            report(BuildStepStarted(1, 1, f"import {tarball.name} (built earlier on this host)"))
            cached = TemplateMeta.from_json(json.loads(described.read_text(encoding="utf-8")))
            return await anyio.to_thread.run_sync(self.archive.import_tarball, tarball, cached)

        def nested(event: BuildEvent) -> None:
            if isinstance(event, BuildStepStarted):
                event = replace(event, name=f"{builtin.parent}: {event.name}")
            report(event)

        parent = await self.ensure(builtin.parent, nested)
        meta = await TemplateBuilder(self.backend).build(
            name=builtin.name,
            kind=TemplateKind.BUILTIN,
            content_hash=builtin.content_hash,
            spec=builtin.spec,
            parent=parent,
            progress=report,
            extra_steps=1,
        )
        total = TemplateBuilder.step_count(builtin.spec) + 1
        report(BuildStepStarted(total, total, "cache it on this host for other instances"))
        await anyio.to_thread.run_sync(self.archive.export_tarball, builtin.name, tarball)
        return meta

    async def prepare_default(self, say: Callable[[str], None]) -> None:
        """Make the default preset's template ready (``make up``) and say what the others cost."""
        default = PRESET_TEMPLATES[DEFAULT_LANGUAGE]
        if self.archive.meta(default) is None:
            say(f"preparing the default template {default} (the first time takes a few minutes)")

            def show(event: BuildEvent) -> None:
                if isinstance(event, BuildStepStarted):
                    say(f"  [{event.index}/{event.total}] {event.name}")

            try:
                await self.ensure(default, show)
            except ShellsError as exc:  # the server still serves the other templates; say why not this one
                say(f"could not prepare {default}: {exc.message}")
        missing = [n for n in builtins() if self.archive.meta(n) is None]
        if missing:
            costs = ", ".join(f"{n} ~{MEASURED_BUILD_S[n]} s" for n in missing)
            say(
                "not built yet; `shells create` builds one on first use, with progress (or all at once: "
                f"shells template build --all): {costs}"
            )
