"""Moving snapshots and templates between a machine's disk and the object store, done where the
disk is.

The durable layer (``control.durable``) decides *what* goes to the object store and when; a
``Carrier`` does the moving. One box moves with its own backends (``LocalCarrier``). A node agent
serves the same calls (target ``durable``) with a ``LocalCarrier`` over its own backends and its own
connection to the object store, so a cluster's control plane asks the node for the upload or the
fetch (``RemoteCarrier``) and the bytes go straight between the node and the store: they never pass
through the control plane. ``RoutedCarrier`` sends each call to the node that holds the thing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import anyio

from ..domain.durable import StoredPart
from ..domain.errors import TemplateNotFound
from ..domain.isolation import DEFAULT_RUNTIME, Runtime
from ..domain.templates import TemplateMeta
from ..objects.store import ObjectStore, get_blob, put_blob
from ..runtime.backend import Backend
from .client import NodeClient

CARRIER_CALLS = frozenset({"put_snapshot", "get_snapshot", "put_template", "get_template"})
"""What a node agent serves under the target ``durable``."""


class Carrier(Protocol):
    async def put_snapshot(self, runtime: Runtime, snapshot_id: str) -> list[StoredPart]:
        """Pack snapshot ``snapshot_id`` and store each part as a blob; the parts stored."""
        ...

    async def get_snapshot(self, runtime: Runtime, snapshot_id: str, parts: Sequence[StoredPart]) -> None:
        """Make snapshot ``snapshot_id`` on the disk from its blobs (each checked on arrival)."""
        ...

    async def put_template(self, name: str) -> list[StoredPart]: ...

    async def get_template(self, meta: TemplateMeta, parts: Sequence[StoredPart]) -> None: ...


class LocalCarrier:
    """The moving done on this machine, with its backends and its object store. ``on_digest`` hears
    each blob's digest before it is sent (the durable layer keeps such blobs from being collected
    until a record names them)."""

    def __init__(
        self,
        backends: Mapping[Runtime, Backend],
        objects: ObjectStore,
        scratch: Path,
        on_digest: Callable[[str], object] | None = None,
    ) -> None:
        self.backends = backends
        self.objects = objects
        self.scratch = scratch
        self.on_digest = on_digest

    def _backend(self, runtime: Runtime) -> Backend:
        return self.backends[runtime]

    async def put_snapshot(self, runtime: Runtime, snapshot_id: str) -> list[StoredPart]:
        backend = self._backend(runtime)
        return await self._put(f"snap-{snapshot_id}", lambda dest: backend.export_snapshot(snapshot_id, dest))

    async def get_snapshot(self, runtime: Runtime, snapshot_id: str, parts: Sequence[StoredPart]) -> None:
        backend = self._backend(runtime)
        await self._get(
            f"snap-{snapshot_id}", parts, lambda files: backend.import_snapshot(snapshot_id, files)
        )

    async def put_template(self, name: str) -> list[StoredPart]:
        backend = self._backend(DEFAULT_RUNTIME)
        return await self._put(f"template-{name}", lambda dest: backend.export_template(name, dest))

    async def get_template(self, meta: TemplateMeta, parts: Sequence[StoredPart]) -> None:
        backend = self._backend(DEFAULT_RUNTIME)
        await self._get(
            f"template-{meta.content_hash}", parts, lambda files: backend.import_template(meta, files)
        )

    async def _put(self, key: str, export: Callable[[Path], Any]) -> list[StoredPart]:
        work = self.scratch / f"up-{key}-{id(asyncio.current_task())}"
        await anyio.to_thread.run_sync(_fresh_dir, work)
        try:
            files = cast(dict[str, Path], await export(work))
            stored: list[StoredPart] = []
            for name, path in sorted(files.items()):
                size = path.stat().st_size
                digest = await put_blob(self.objects, path, on_digest=self.on_digest)
                stored.append(StoredPart(name, digest, size))
            return stored
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))

    async def _get(
        self, key: str, parts: Sequence[StoredPart], rebuild: Callable[[dict[str, Path]], Any]
    ) -> None:
        work = self.scratch / f"down-{key}-{id(asyncio.current_task())}"
        await anyio.to_thread.run_sync(_fresh_dir, work)
        try:
            files = {p.name: work / p.name for p in parts}
            for part in parts:
                await get_blob(self.objects, part.sha256, files[part.name])
            await rebuild(files)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))


class RemoteCarrier:
    """A node agent's carrier, over the node RPC: the node moves the bytes itself."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client

    async def put_snapshot(self, runtime: Runtime, snapshot_id: str) -> list[StoredPart]:
        return cast(list[StoredPart], await self.client.call("durable", "put_snapshot", runtime, snapshot_id))

    async def get_snapshot(self, runtime: Runtime, snapshot_id: str, parts: Sequence[StoredPart]) -> None:
        await self.client.call("durable", "get_snapshot", runtime, snapshot_id, list(parts))

    async def put_template(self, name: str) -> list[StoredPart]:
        return cast(list[StoredPart], await self.client.call("durable", "put_template", name))

    async def get_template(self, meta: TemplateMeta, parts: Sequence[StoredPart]) -> None:
        await self.client.call("durable", "get_template", meta, list(parts))


class RoutedCarrier:
    """Several nodes' carriers: a snapshot's calls go to the node of the shell it was taken from
    (``snapshot_node``), a template is stored from a node that has it and fetched onto
    every node (each class of a cluster runs the same templates)."""

    def __init__(self, carriers: Mapping[str, Carrier], snapshot_node: Callable[[str], str | None]) -> None:
        self.carriers = dict(carriers)
        self.snapshot_node = snapshot_node

    def at(self, node: str) -> Carrier:
        return self.carriers[node]

    def _of_snapshot(self, snapshot_id: str) -> Carrier:
        name = self.snapshot_node(snapshot_id)
        return self.carriers[name] if name in self.carriers else next(iter(self.carriers.values()))

    async def put_snapshot(self, runtime: Runtime, snapshot_id: str) -> list[StoredPart]:
        return await self._of_snapshot(snapshot_id).put_snapshot(runtime, snapshot_id)

    async def get_snapshot(self, runtime: Runtime, snapshot_id: str, parts: Sequence[StoredPart]) -> None:
        await self._of_snapshot(snapshot_id).get_snapshot(runtime, snapshot_id, parts)

    async def put_template(self, name: str) -> list[StoredPart]:
        missing: TemplateNotFound | None = None
        for carrier in self.carriers.values():  # the node that made it has it
            try:
                return await carrier.put_template(name)
            except TemplateNotFound as exc:
                missing = exc
        assert missing is not None
        raise missing

    async def get_template(self, meta: TemplateMeta, parts: Sequence[StoredPart]) -> None:
        await asyncio.gather(*(c.get_template(meta, parts) for c in self.carriers.values()))


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
