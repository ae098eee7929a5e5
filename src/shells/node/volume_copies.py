"""A machine's copies of the tenants' volumes, and their way to and from the object store, done
where the disk is (docs/storage.md, "Following its shells to another machine").

The control plane decides which copy is newest and what the record says (``control.volume_store``);
a machine keeps the copies (``runtime.volumes.HostVolumes``) and moves their bytes: it packs a copy
and stores it as a blob, or fetches a blob (checked against its digest) and restores it. One box does
it in-process (``LocalVolumeCarrier``); a node agent serves the same calls under the target
``volumes`` with its own connection to the object store, so a cluster's control plane asks the node
(``RemoteVolumes``) and a volume's bytes never pass through the control plane."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, Protocol, cast

import anyio

from ..domain.errors import ActionNotSupported
from ..objects.store import ObjectStore, get_blob, put_blob
from ..runtime.volumes import PACKED, HostVolumes
from .client import NodeClient

VOLUME_CALLS = frozenset(
    {
        "create",
        "delete",
        "has",
        "local_version",
        "set_local_version",
        "mark_dirty",
        "dirty_token",
        "dirty",
        "clear_dirty",
        "used_bytes",
        "put_volume",
        "get_volume",
    }
)
"""What a node agent serves under the target ``volumes``: its ``HostVolumes`` and its carrier."""


_ON_NODE = "A node packs and restores its volume copies itself (put_volume, get_volume)."


class VolumeCarrier(Protocol):
    async def put_volume(self, volume_id: str) -> tuple[str, int]:
        """Pack the copy (from a read-only snapshot) and store it as a blob: its digest and size."""
        ...

    async def get_volume(self, volume_id: str, size_bytes: int, blob: str, version: int) -> None:
        """Replace the copy (if any) with the files of blob ``blob``, which is ``version``."""
        ...


class LocalVolumeCarrier:
    """The moving done on this machine, with its volumes and its object store."""

    def __init__(self, host: HostVolumes, objects: ObjectStore, scratch: Path) -> None:
        self.host, self.objects, self.scratch = host, objects, scratch

    async def put_volume(self, volume_id: str) -> tuple[str, int]:
        work = await self._work(f"up-vol-{volume_id}")
        try:
            packed = await self.host.export(volume_id, work)
            size = packed.stat().st_size
            return await put_blob(self.objects, packed), size
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def get_volume(self, volume_id: str, size_bytes: int, blob: str, version: int) -> None:
        work = await self._work(f"down-vol-{volume_id}")
        try:
            await get_blob(self.objects, blob, work / PACKED)
            await self.host.restore(volume_id, size_bytes, work / PACKED, version)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def _work(self, key: str) -> Path:
        work = self.scratch / f"{key}-{id(asyncio.current_task())}"

        def fresh() -> None:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)

        await anyio.to_thread.run_sync(fresh)
        return work


class RemoteVolumes:
    """A node agent's volumes and carrier, over the node RPC. The synchronous marks are blocking
    round trips (as ``RemoteNetwork``'s calls are): each is a file read or written on the node, asked
    at a shell's start or an upload, never per request. ``root`` is where the node keeps its copies
    (its ``hello``), so a shell's spec names the node's own directory."""

    def __init__(self, client: NodeClient, root: Path) -> None:
        self.client, self.root = client, root

    async def _call(self, method: str, *args: Any) -> Any:
        return await self.client.call("volumes", method, *args)

    def _blocking(self, method: str, *args: Any) -> Any:
        return self.client.call_blocking("volumes", method, *args)

    def source(self, volume_id: str) -> Path:
        return self.root / volume_id

    async def create(self, volume_id: str, size_bytes: int) -> None:
        await self._call("create", volume_id, size_bytes)

    async def delete(self, volume_id: str) -> None:
        await self._call("delete", volume_id)

    def used_bytes(self, volume_id: str) -> int | None:
        return cast(int | None, self._blocking("used_bytes", volume_id))

    def has(self, volume_id: str) -> bool:
        return bool(self._blocking("has", volume_id))

    def local_version(self, volume_id: str) -> int:
        return int(self._blocking("local_version", volume_id))

    def set_local_version(self, volume_id: str, version: int) -> None:
        self._blocking("set_local_version", volume_id, version)

    def mark_dirty(self, volume_id: str) -> None:
        self._blocking("mark_dirty", volume_id)

    def dirty_token(self, volume_id: str) -> str | None:
        return cast(str | None, self._blocking("dirty_token", volume_id))

    def dirty(self) -> list[str]:
        return list(self._blocking("dirty"))

    def clear_dirty(self, volume_id: str, token: str) -> None:
        self._blocking("clear_dirty", volume_id, token)

    async def export(self, volume_id: str, dest: Path) -> Path:
        raise ActionNotSupported(_ON_NODE)

    async def restore(self, volume_id: str, size_bytes: int, tarball: Path, version: int) -> None:
        raise ActionNotSupported(_ON_NODE)

    def remove_leftovers(self) -> list[str]:
        raise ActionNotSupported("A node agent removes its own leftovers when it starts.")

    async def put_volume(self, volume_id: str) -> tuple[str, int]:
        digest, size = await self._call("put_volume", volume_id)
        return str(digest), int(size)

    async def get_volume(self, volume_id: str, size_bytes: int, blob: str, version: int) -> None:
        await self._call("get_volume", volume_id, size_bytes, blob, version)
