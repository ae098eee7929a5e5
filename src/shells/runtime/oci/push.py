"""Push an image (layer blobs already packed, a config document) to a registry as an OCI manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...domain.oci import OCI_CONFIG, OCI_MANIFEST
from .registry import RegistryClient


@dataclass(frozen=True)
class PackedLayer:
    """A layer blob on disk: its digest, size and media type (the compressed form)."""

    path: Path
    digest: str
    size: int
    media_type: str


def config_document(
    run_config: dict[str, Any], diff_ids: list[str], architecture: str, history: str
) -> bytes:
    """An image config: the platform, how to run it, and the digests of the uncompressed layers."""
    doc = {
        "architecture": architecture,
        "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": history}],
    }
    return json.dumps(doc, sort_keys=True).encode()


async def push_image(client: RegistryClient, tag: str, layers: list[PackedLayer], config: bytes) -> str:
    """Upload the layers and the config the registry lacks, then the manifest under ``tag``; the
    manifest's digest."""
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    for layer in layers:
        await client.push_blob(layer.digest, layer.path)
    await client.push_blob_bytes(config_digest, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": x.media_type, "digest": x.digest, "size": x.size} for x in layers],
    }
    body = json.dumps(manifest, sort_keys=True).encode()
    await client.push_manifest(tag, OCI_MANIFEST, body)
    return "sha256:" + hashlib.sha256(body).hexdigest()
