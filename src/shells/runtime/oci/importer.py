"""Import an OCI image as a template: resolve the reference for the host's platform, download every
layer into the host's blob store (each digest checked), apply the layers in order to a scratch
subvolume, and publish it as a read-only template whose defaults come from the image's config.

Nothing is registered until the last step, and the template appears by one rename of a complete
staging directory (``TemplateBits``), so a failure at any point leaves no template behind. The
same image (by manifest digest) imported again is a snapshot of the first import, sharing its blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from ...domain.errors import ImageRejected
from ...domain.limits import OCI_IMAGE_MAX_BYTES, OCI_MANIFEST_MAX_BYTES, OCI_MAX_LAYERS
from ...domain.oci import (
    INDEX_TYPES,
    LAYER_COMPRESSION,
    MANIFEST_TYPES,
    ImageRef,
    Platform,
    image_defaults,
    pick_platform,
    user_ids,
)
from ...domain.templates import (
    DEFAULT_WORKDIR,
    BuildEvent,
    BuildOutput,
    BuildProgress,
    BuildStepStarted,
    ImageInfo,
    TemplateKind,
    TemplateMeta,
)
from ..container.template_bits import TemplateBits
from ..images import CA_BUNDLE, host_local_cas, trust_host_cas
from .blobs import BlobStore
from .layers import MAX_ID, Budget, apply_layer, make_dirs, read_inside
from .registry import RegistryClient

IMPORT_FORMAT = "oci-import/1"
STEPS = 4
PROGRESS_EVERY = 8 * 1024 * 1024
PASSWD_MAX_BYTES = 1024 * 1024
SHELLS_DIRS = (".shells", "workspace", "tmp", "proc", "dev", "sys", "etc", "root")
"""Mount points and places every shell needs, made (mode 0755) where an image lacks them."""


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    compression: str

    def name(self, index: int, total: int) -> str:
        return f"layer {index}/{total} ({self.digest[:19]})"


@dataclass(frozen=True)
class PulledImage:
    """An image whose blobs are all in the blob store, checked."""

    source: str
    digest: str
    config: dict[str, Any]
    layers: tuple[Layer, ...]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{IMPORT_FORMAT}:{self.digest}".encode()).hexdigest()


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ImageRejected(f"The image's {what} is not a JSON object.", {"layer": None})
    return doc


def _layers(manifest: dict[str, Any]) -> tuple[Layer, ...]:
    entries = manifest.get("layers")
    if not isinstance(entries, list) or len(entries) > OCI_MAX_LAYERS:
        raise ImageRejected(f"The manifest must list 0 to {OCI_MAX_LAYERS} layers.", {"layer": None})
    layers = []
    for i, entry in enumerate(entries, start=1):
        digest, size, media = entry.get("digest"), entry.get("size"), entry.get("mediaType")
        where = f"layer {i}/{len(entries)}"
        if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
            raise ImageRejected(f"{where} has no sha256 digest.", {"layer": where})
        if not isinstance(size, int) or size < 0:
            raise ImageRejected(f"{where} has no size.", {"layer": where})
        if media not in LAYER_COMPRESSION:
            raise ImageRejected(f"{where} has the unsupported media type {media!r}.", {"layer": where})
        layers.append(Layer(digest, size, LAYER_COMPRESSION[media]))
    if sum(layer.size for layer in layers) > OCI_IMAGE_MAX_BYTES:
        raise ImageRejected(
            f"The image's layers add up to more than {OCI_IMAGE_MAX_BYTES} bytes.", {"layer": None}
        )
    return tuple(layers)


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one manifest for this platform: what to download."""

    ref: ImageRef
    platform: Platform
    digest: str
    config_digest: str
    config_size: int
    layers: tuple[Layer, ...]


async def resolve(client: RegistryClient, ref: ImageRef, platform: Platform) -> Resolved:
    """The manifest ``ref`` names for ``platform`` (through an index if it is one), checked. Runs
    before an import's stream starts, so a bad reference, refused credentials or a missing image
    are plain errors."""
    media, digest, body = await client.manifest(ref.reference)
    if media in INDEX_TYPES:
        entry = pick_platform(_json(body, "index"), platform)
        media, digest, body = await client.manifest(str(entry.get("digest")))
    if media not in MANIFEST_TYPES:
        raise ImageRejected(
            f"The registry answered with an unsupported manifest type {media!r}.", {"layer": None}
        )
    manifest = _json(body, "manifest")
    layers = _layers(manifest)
    config = manifest.get("config") or {}
    config_digest, config_size = config.get("digest"), config.get("size")
    if (
        not isinstance(config_digest, str)
        or not isinstance(config_size, int)
        or config_size > OCI_MANIFEST_MAX_BYTES
    ):
        raise ImageRejected("The manifest names no usable image config.", {"layer": "config"})
    return Resolved(ref, platform, digest, config_digest, config_size, layers)


async def pull(
    client: RegistryClient, resolved: Resolved, blobs: BlobStore, progress: BuildProgress
) -> PulledImage:
    """Bring the config and layers of ``resolved`` into ``blobs`` (steps 1 and 2 of an import)."""
    layers = resolved.layers
    progress(BuildStepStarted(1, STEPS, f"resolve {resolved.ref} for {resolved.platform}: {resolved.digest}"))
    total = sum(layer.size for layer in layers)
    progress(BuildStepStarted(2, STEPS, f"download {len(layers)} layers ({_mib(total)})"))
    await _fetch(client, blobs, resolved.config_digest, resolved.config_size, "the image config", _ignore)
    done = shown = 0
    for i, layer in enumerate(layers, start=1):
        name = layer.name(i, len(layers))
        if blobs.has(layer.digest):
            done += layer.size
            progress(BuildOutput(f"{name}: {_mib(layer.size)}, already here\n"))
            continue

        def counted(n: int, name: str = name) -> None:
            nonlocal done, shown
            done += n
            if done - shown >= PROGRESS_EVERY:
                shown = done
                progress(BuildOutput(f"{name}: {_mib(done)} of {_mib(total)}\n"))

        await _fetch(client, blobs, layer.digest, layer.size, name, counted)
        progress(BuildOutput(f"{name}: {_mib(layer.size)} downloaded\n"))
    config = _json(blobs.path(resolved.config_digest).read_bytes(), "config")
    return PulledImage(str(resolved.ref), resolved.digest, config, layers)


def _ignore(_: int) -> None:
    pass


async def _fetch(
    client: RegistryClient,
    blobs: BlobStore,
    digest: str,
    size: int,
    what: str,
    on_bytes: Callable[[int], None],
) -> None:
    if blobs.has(digest):
        return
    with blobs.writing(digest) as partial:
        await client.blob_to_file(digest, size, partial, on_bytes, what)


def image_meta(name: str, image: PulledImage) -> TemplateMeta:
    """The template an image makes: its env and working directory, its user, entrypoint, cmd and
    labels recorded."""
    defaults = image_defaults(image.config)
    return TemplateMeta(
        name=name,
        kind=TemplateKind.IMAGE,
        parent=None,
        content_hash=image.content_hash,
        env=defaults.env,
        workdir=defaults.workdir or DEFAULT_WORKDIR,
        image=ImageInfo(
            source=image.source,
            digest=image.digest,
            user=defaults.user,
            entrypoint=defaults.entrypoint,
            cmd=defaults.cmd,
            labels=defaults.labels,
        ),
    )


async def unpack(
    storage: TemplateBits,
    blobs: BlobStore,
    image: PulledImage,
    meta: TemplateMeta,
    progress: BuildProgress,
) -> TemplateMeta:
    """Publish ``image`` as template ``meta.name`` (steps 3 and 4 of an import), in a thread whose
    progress is handed back to the event loop."""
    loop = asyncio.get_running_loop()

    def report(event: BuildEvent) -> None:
        loop.call_soon_threadsafe(progress, event)

    return await anyio.to_thread.run_sync(_unpack, storage, blobs, image, meta, report)


def _unpack(
    storage: TemplateBits,
    blobs: BlobStore,
    image: PulledImage,
    meta: TemplateMeta,
    progress: BuildProgress,
) -> TemplateMeta:
    pool = storage.pool
    twin = next((m for m in storage.all() if m.content_hash == meta.content_hash), None)
    if twin is not None:  # the same image imported before: share its blocks
        progress(BuildStepStarted(3, STEPS, f"reuse the layers of {twin.name} (same image)"))
        progress(BuildStepStarted(4, STEPS, f"save the template {meta.name}"))
        return storage.clone(twin.name, replace(meta, versions={}))
    with storage.staging(meta.name) as staging:
        progress(BuildStepStarted(3, STEPS, f"unpack {len(image.layers)} layers"))
        scratch = staging / ".rootfs-rw"
        pool.create_subvolume(scratch)
        try:
            scratch.chmod(0o755)
            budget = Budget()
            for i, layer in enumerate(image.layers, start=1):
                name = layer.name(i, len(image.layers))
                apply_layer(blobs.path(layer.digest), layer.compression, scratch, name, budget)
                progress(BuildOutput(f"{name}: applied\n"))
            _finish(scratch, meta.workdir)
            if (scratch / CA_BUNDLE).is_file() and not (scratch / CA_BUNDLE).is_symlink():
                trust_host_cas(scratch, host_local_cas(storage.host_ca_dir))
            pool.snapshot(scratch, staging / "rootfs", readonly=True)
            owner = _workspace_owner(scratch, meta)
        finally:
            pool.delete_subvolume(scratch)
        if owner is not None:  # the image's user owns /workspace in every shell of it
            workspace = staging / ".workspace-rw"
            pool.create_subvolume(workspace)
            try:
                os.chown(workspace, *owner)
                workspace.chmod(0o755)
                pool.snapshot(workspace, staging / "workspace", readonly=True)
            finally:
                pool.delete_subvolume(workspace)
        progress(BuildStepStarted(4, STEPS, f"save the template {meta.name}"))
        return storage.commit(staging, replace(meta, versions={}))


def _workspace_owner(tree: Path, meta: TemplateMeta) -> tuple[int, int] | None:
    """The ids of the image's ``User`` (from its own /etc/passwd and /etc/group), when not root."""
    user = meta.image.user if meta.image else None
    if not user:
        return None
    texts = [
        (read_inside(tree, f"etc/{f}", PASSWD_MAX_BYTES) or b"").decode(errors="replace")
        for f in ("passwd", "group")
    ]
    ids = user_ids(user, *texts)
    return ids if ids is not None and ids != (0, 0) and max(ids) <= MAX_ID else None


def _finish(tree: Path, workdir: str) -> None:
    """Make the directories every shell mounts on or works in, where the image has none (resolving
    the image's links inside the tree, as its layers were)."""
    for rel in (*SHELLS_DIRS, workdir):
        make_dirs(tree, rel)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
