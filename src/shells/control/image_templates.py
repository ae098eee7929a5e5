"""Use cases for templates and OCI images: import an image from a registry as a template, export a
template to a registry as an image.

An imported template belongs to the importing tenant like a spec-built one. Credentials are used for
the one pull or push and never stored. Import and export stream the same updates as a build
(``Templates``' stream): steps, progress lines, then the template.
"""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ..domain.errors import InvalidRequest, TemplateExists
from ..domain.oci import ImageRef, host_platform, parse_image_ref
from ..domain.principal import Principal, Scope
from ..domain.templates import (
    BuildOutput,
    BuildProgress,
    BuildStepStarted,
    TemplateKind,
    TemplateRecord,
    TemplateStatus,
    parse_template_name,
)
from ..runtime.container.template_bits import TemplateBits
from ..runtime.oci.blobs import BlobStore
from ..runtime.oci.exporter import blob_dir, export_template
from ..runtime.oci.importer import image_meta, pull, resolve, unpack
from ..runtime.oci.registry import Credentials, RegistryClient, tls_context
from ..runtime.templates.catalog import builtins
from .auth import require
from .templates import BuildUpdate, Templates, _known


def _credentials(value: object) -> Credentials | None:
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or set(value) != {"username", "password"}
        or not all(isinstance(v, str) and v and "\0" not in v for v in value.values())
    ):
        raise InvalidRequest(
            '\'credentials\' must be {"username": "…", "password": "…"} (a password or a token).',
            {"field": "credentials"},
        )
    return Credentials(str(value["username"]), str(value["password"]))


@dataclass(frozen=True)
class ImportRequest:
    """``{"image": "registry/repo:tag", "name": "app:1", "credentials"?: {"username", "password"}}``."""

    image: ImageRef
    name: str
    credentials: Credentials | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ImportRequest:
        _known(body, {"image", "name", "credentials"})
        return cls(
            parse_image_ref(body.get("image"), "image"),
            parse_template_name(body.get("name"), "name"),
            _credentials(body.get("credentials")),
        )


@dataclass(frozen=True)
class ExportRequest:
    """``{"template": "app:1", "image": "registry/repo:tag", "credentials"?}``."""

    template: str
    image: ImageRef
    credentials: Credentials | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ExportRequest:
        _known(body, {"template", "image", "credentials"})
        template = body.get("template")
        if not isinstance(template, str) or not template:
            raise InvalidRequest("'template' must name a template you can use.", {"field": "template"})
        image = parse_image_ref(body.get("image"), "image")
        if image.digest:
            raise InvalidRequest("'image' must name a tag to push to, not a digest.", {"field": "image"})
        return cls(template, image, _credentials(body.get("credentials")))


class ImageTemplates:
    def __init__(self, templates: Templates) -> None:
        self.templates = templates
        settings = templates.ctx.settings
        self.blobs = BlobStore(blob_dir(settings.cache_dir))
        self.blobs.sweep_partials()
        cas = sorted(settings.host_ca_dir.rglob("*.crt")) if settings.host_ca_dir.is_dir() else []
        if settings.registry_ca_file is not None:
            cas.append(settings.registry_ca_file)
        self.tls = tls_context(tuple(cas))

    @property
    def storage(self) -> TemplateBits:
        bits = getattr(self.templates.backend, "template_bits", None)
        assert isinstance(bits, TemplateBits), "templates live in the container class's pool"
        return bits

    def _existing(self, principal: Principal, name: str, content_hash: str | None) -> TemplateRecord | None:
        """The caller's own image template ``name`` (with content ``content_hash`` when given: an
        import of the same image, answered as cached), None if the name is free; TemplateExists if
        someone else's template, a built-in or other content holds it."""
        rec = self.templates.records.get(name)
        if rec is None and name not in builtins():
            return None
        mine = rec is not None and rec.tenant == principal.tenant and rec.meta.kind is TemplateKind.IMAGE
        if rec is not None and mine and content_hash in (None, rec.meta.content_hash):
            return rec
        raise TemplateExists(
            f"The name '{name}' is taken{' by other content' if mine else ''}; choose another name or tag.",
            {"name": name},
        )

    async def import_image(
        self, principal: Principal, req: ImportRequest, door: str
    ) -> AsyncIterator[BuildUpdate]:
        """Check the request, then return the import's updates (the stream of a build)."""
        require(principal, Scope.CREATE)
        self._existing(principal, req.name, None)
        work = await self.importer(principal, req, door)
        return self.templates._stream(req.name, work)

    async def importer(
        self, principal: Principal, req: ImportRequest, door: str
    ) -> Callable[[BuildProgress], Awaitable[tuple[TemplateRecord, bool]]]:
        """Resolve ``req.image`` now (so refused credentials or a missing image are plain errors),
        and return the rest of the import, to run with a progress callback: (template, cached)."""
        t = self.templates
        client = RegistryClient(req.image, req.credentials, self.tls)
        try:
            resolved = await resolve(client, req.image, host_platform(platform.machine()))
        except BaseException:
            await client.aclose()
            raise

        async def work(report: BuildProgress) -> tuple[TemplateRecord, bool]:
            async with client:
                image = await pull(client, resolved, self.blobs, report)
            cached = self._existing(principal, req.name, image.content_hash)
            if cached is not None:
                return cached, True
            try:
                meta = await unpack(self.storage, self.blobs, image, image_meta(req.name, image), report)
                rec = TemplateRecord(meta, TemplateStatus.READY, tenant=principal.tenant, owner=principal.id)
                draft = t._draft(principal, door, "import", req.name, image=image.source, digest=image.digest)
                t._register(rec, "", draft)
            except BaseException:
                with anyio.CancelScope(shield=True):  # unpacked, then interrupted: not half-registered
                    if t.records.get(req.name) is None and t.backend.template_meta(req.name):
                        await t.backend.delete_template(req.name)
                raise
            return rec, False

        return work

    async def export(self, principal: Principal, req: ExportRequest, door: str) -> AsyncIterator[BuildUpdate]:
        """Push a template the caller can use (a built-in, or one of its tenant's) to a registry."""
        require(principal, Scope.READ)
        t = self.templates
        name = t.resolve(principal, req.template, "template")
        rec = t._visible(principal, name)
        if rec is None:
            raise InvalidRequest(f"Template '{name}' is not built; build it first.", {"field": "template"})

        async def work(report: BuildProgress) -> tuple[TemplateRecord, bool]:
            report(BuildStepStarted(1, 2, f"pack {name} as one layer"))
            async with RegistryClient(req.image, req.credentials, self.tls, push=True) as client:
                digest = await export_template(
                    self.storage, self.blobs, rec.meta, client, req.image.reference
                )
                report(BuildStepStarted(2, 2, f"pushed {req.image} ({digest})"))
                report(BuildOutput(f"{req.image}@{digest}\n"))
            t.ctx.store.add_event(
                t._draft(principal, door, "export", name, image=str(req.image), digest=digest)
            )
            return rec, False

        return t._stream(name, work)
