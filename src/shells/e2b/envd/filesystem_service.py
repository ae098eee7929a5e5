"""envd's ``filesystem.Filesystem`` service over Shells' file operations (``control.inside``)."""

from __future__ import annotations

import stat as stat_module
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from connectrpc.request import RequestContext
from protobuf import Oneof
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ...control.service import Control
from ...domain.errors import AlreadyExists, FileNotFound, InvalidRequest, PayloadTooLarge, ShellsError
from ...domain.execution import FileChange, FileEntry
from ...domain.limits import MAX_LIST_ENTRIES
from ..access import DoorAccess
from ..errors import connect_error, rpc
from ..sandboxes import DOOR
from ..watchers import Watchers
from .caller import Caller, caller
from .files import METADATA_XATTR
from .gen.filesystem import filesystem_pb as fs
from .gen.filesystem.filesystem_connect import Filesystem
from .keepalive import interval, with_keepalive

MAX_DEPTH = 32
_TYPES = {"file": fs.FileType.FILE, "dir": fs.FileType.DIRECTORY, "symlink": fs.FileType.SYMLINK}
_KIND_BITS = {"file": stat_module.S_IFREG, "dir": stat_module.S_IFDIR, "symlink": stat_module.S_IFLNK}
_CHANGES = {
    "create": fs.EventType.CREATE,
    "write": fs.EventType.WRITE,
    "remove": fs.EventType.REMOVE,
    "rename": fs.EventType.RENAME,
    "chmod": fs.EventType.CHMOD,
}


def entry_info(entry: FileEntry) -> fs.EntryInfo:
    return fs.EntryInfo(
        name=entry.name,
        type=_TYPES.get(entry.kind, fs.FileType.UNSPECIFIED),
        path=entry.path,
        size=entry.size,
        mode=entry.mode,
        permissions=stat_module.filemode(_KIND_BITS.get(entry.kind, 0) | entry.mode),
        modified_time=Timestamp.from_datetime(datetime.fromtimestamp(entry.mtime, UTC)),
        symlink_target=entry.link_target,
        metadata=entry.metadata,
    )


class FilesystemService(Filesystem):
    def __init__(self, control: Control, access: DoorAccess, watchers: Watchers) -> None:
        self.control = control
        self.access = access
        self.watchers = watchers

    def _caller(self, ctx: RequestContext[Any, Any]) -> Caller:
        return caller(self.access, ctx.request_headers)

    @rpc
    async def stat(self, request: fs.StatRequest, ctx: RequestContext[Any, Any]) -> fs.StatResponse:
        who = self._caller(ctx)
        path = who.path(request.path)
        entry = await self.control.inside.stat(who.principal, who.shell_id, path, METADATA_XATTR)
        return fs.StatResponse(entry=entry_info(entry))

    @rpc
    async def list_dir(self, request: fs.ListDirRequest, ctx: RequestContext[Any, Any]) -> fs.ListDirResponse:
        """Entries down to ``depth`` levels (1: the directory's own), breadth first, at most
        MAX_LIST_ENTRIES in all."""
        who = self._caller(ctx)
        depth = request.depth or 1
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"'depth' must be from 1 to {MAX_DEPTH}.", {"field": "depth"})
        found: list[FileEntry] = []
        level = [who.path(request.path)]
        for _ in range(depth):
            below: list[str] = []
            for directory in level:
                entries = await self.control.inside.list_dir(
                    who.principal, who.shell_id, directory, METADATA_XATTR
                )
                found += entries
                below += [e.path for e in entries if e.kind == "dir"]
                if len(found) > MAX_LIST_ENTRIES:
                    raise PayloadTooLarge(f"More than {MAX_LIST_ENTRIES} entries; list a smaller depth.")
            level = below
        return fs.ListDirResponse(entries=[entry_info(e) for e in found])

    @rpc
    async def make_dir(self, request: fs.MakeDirRequest, ctx: RequestContext[Any, Any]) -> fs.MakeDirResponse:
        who = self._caller(ctx)
        path = who.path(request.path)
        try:
            await self.control.inside.stat(who.principal, who.shell_id, path)
        except FileNotFound:
            pass
        else:
            raise AlreadyExists(f"{path} already exists.", {"path": path})
        await self.control.inside.mkdir(who.principal, who.shell_id, path, DOOR, owner=who.run_as)
        entry = await self.control.inside.stat(who.principal, who.shell_id, path)
        return fs.MakeDirResponse(entry=entry_info(entry))

    @rpc
    async def move(self, request: fs.MoveRequest, ctx: RequestContext[Any, Any]) -> fs.MoveResponse:
        who = self._caller(ctx)
        entry = await self.control.inside.rename(
            who.principal, who.shell_id, who.path(request.source), who.path(request.destination), DOOR
        )
        return fs.MoveResponse(entry=entry_info(entry))

    @rpc
    async def remove(self, request: fs.RemoveRequest, ctx: RequestContext[Any, Any]) -> fs.RemoveResponse:
        who = self._caller(ctx)
        await self.control.inside.remove(who.principal, who.shell_id, who.path(request.path), True, DOOR)
        return fs.RemoveResponse()

    async def watch_dir(
        self, request: fs.WatchDirRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[fs.WatchDirResponse]:
        try:
            who = self._caller(ctx)
            changes = await self.control.inside.watch(
                who.principal, who.shell_id, who.path(request.path), request.recursive
            )
        except ShellsError as exc:
            raise connect_error(exc) from None
        start: Oneof[Literal["start"], fs.WatchDirResponse.StartEvent] = Oneof(
            field="start", value=fs.WatchDirResponse.StartEvent()
        )
        yield fs.WatchDirResponse(event=start)
        async for change in with_keepalive(changes, interval(ctx.request_headers)):
            if change is None:
                keepalive: Oneof[Literal["keepalive"], fs.WatchDirResponse.KeepAlive] = Oneof(
                    field="keepalive", value=fs.WatchDirResponse.KeepAlive()
                )
                yield fs.WatchDirResponse(event=keepalive)
            else:
                event: Oneof[Literal["filesystem"], fs.FilesystemEvent] = Oneof(
                    field="filesystem", value=_event(change)
                )
                yield fs.WatchDirResponse(event=event)

    @rpc
    async def create_watcher(
        self, request: fs.CreateWatcherRequest, ctx: RequestContext[Any, Any]
    ) -> fs.CreateWatcherResponse:
        who = self._caller(ctx)
        changes = await self.control.inside.watch(
            who.principal, who.shell_id, who.path(request.path), request.recursive
        )
        watcher_id = self.watchers.add(who.shell_id, changes)
        return fs.CreateWatcherResponse(watcher_id=watcher_id)

    @rpc
    async def get_watcher_events(
        self, request: fs.GetWatcherEventsRequest, ctx: RequestContext[Any, Any]
    ) -> fs.GetWatcherEventsResponse:
        who = self._caller(ctx)
        changes = self.watchers.take(who.shell_id, request.watcher_id)
        return fs.GetWatcherEventsResponse(events=[_event(c) for c in changes])

    @rpc
    async def remove_watcher(
        self, request: fs.RemoveWatcherRequest, ctx: RequestContext[Any, Any]
    ) -> fs.RemoveWatcherResponse:
        who = self._caller(ctx)
        await self.watchers.remove(who.shell_id, request.watcher_id)
        return fs.RemoveWatcherResponse()


def _event(change: FileChange) -> fs.FilesystemEvent:
    return fs.FilesystemEvent(name=change.name, type=_CHANGES[change.kind])
