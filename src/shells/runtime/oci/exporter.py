"""Export a template as an OCI image: its files as one gzip layer (the host's CAs taken out again, a
saved /workspace included), its defaults as the image config, pushed to a registry.

The layer is packed from a writable snapshot of the template that no shell can reach, and its blob
is kept in the host's blob store, so exporting the same template again uploads nothing new.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import anyio

from ...domain.errors import RuntimeFailure
from ...domain.oci import OCI_LAYER_GZIP, ImageDefaults, defaults_config, host_platform
from ...domain.templates import TemplateMeta
from ..container.template_bits import TemplateBits, copy_tree
from ..images import untrust_host_cas
from .blobs import BlobStore
from .push import PackedLayer, config_document, push_image
from .registry import RegistryClient

CHUNK = 1 << 20
DEFAULT_CMD = ("/bin/sh",)


def export_defaults(meta: TemplateMeta) -> ImageDefaults:
    """What the exported image says about running it: the template's env, workdir and (for an image
    template) user, entrypoint, cmd and labels; ``/bin/sh`` when nothing names a command."""
    image = meta.image
    labels = {**(image.labels if image else {}), "org.shells.template": meta.name}
    return ImageDefaults(
        env=dict(meta.env),
        workdir=meta.workdir,
        user=image.user if image else None,
        entrypoint=image.entrypoint if image else (),
        cmd=(image.cmd if image and (image.cmd or image.entrypoint) else DEFAULT_CMD),
        labels=labels,
    )


def _pack(storage: TemplateBits, blobs: BlobStore, name: str) -> tuple[PackedLayer, str]:
    """The template's files as a gzip layer in the blob store, and the layer's diff id."""
    storage.require(name)
    scratch = storage.root / f".{name}.oci-{os.urandom(6).hex()}"
    storage.pool.snapshot(storage.rootfs(name), scratch, readonly=False)
    partial = blobs.root / f".export-{os.urandom(6).hex()}"
    blobs.root.mkdir(parents=True, exist_ok=True)
    try:
        untrust_host_cas(scratch)
        workspace = storage.workspace(name)
        if workspace is not None:
            copy_tree(workspace, scratch / "workspace")
        raw = hashlib.sha256()
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=user.*",
             "--xattrs-include=security.capability", "--sort=name", "-C", str(scratch), "-cf", "-", "."],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        with partial.open("wb") as out:
            gz = subprocess.Popen(["gzip", "-1", "-n"], stdin=subprocess.PIPE, stdout=out)
            assert tar.stdout is not None and gz.stdin is not None
            while chunk := tar.stdout.read(CHUNK):
                raw.update(chunk)
                gz.stdin.write(chunk)
            gz.stdin.close()
            tar_err = tar.stderr.read() if tar.stderr else b""
            if tar.wait() != 0 or gz.wait() != 0:
                raise RuntimeFailure(
                    f"packing template {name} failed: {tar_err.decode(errors='replace')[-2000:]}"
                )
        digest, size = blobs.put_file(partial)
        return PackedLayer(blobs.path(digest), digest, size, OCI_LAYER_GZIP), "sha256:" + raw.hexdigest()
    finally:
        partial.unlink(missing_ok=True)
        storage.pool.delete_subvolume(scratch)


async def export_template(
    storage: TemplateBits, blobs: BlobStore, meta: TemplateMeta, client: RegistryClient, tag: str
) -> str:
    """Push template ``meta.name`` as ``tag`` of the client's repository; the manifest's digest."""
    layer, diff_id = await anyio.to_thread.run_sync(_pack, storage, blobs, meta.name)
    arch = host_platform(platform.machine()).architecture
    config = config_document(
        defaults_config(export_defaults(meta)), [diff_id], arch, f"shells template {meta.name}"
    )
    return await push_image(client, tag, [layer], config)


def blob_dir(cache_dir: Path) -> Path:
    """Where the host keeps image blobs (shared by every instance, like the template cache)."""
    return cache_dir / "oci" / "blobs"
