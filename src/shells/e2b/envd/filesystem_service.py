"""envd's ``filesystem.Filesystem`` service over Shells' file operations (``control.inside``)."""

from __future__ import annotations

import stat as stat_module
from datetime import UTC, datetime
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from ...control.service import Control
from ...domain.errors import AlreadyExists, FileNotFound, InvalidRequest, PayloadTooLarge, ShellsError
from ...domain.execution import FileEntry
from ...domain.limits import MAX_LIST_ENTRIES
from ..access import DoorAccess
from ..errors import connect_error
from ..sandboxes import DOOR
from .caller import Caller, caller
from .gen.filesystem import filesystem_pb as fs
from .gen.filesystem.filesystem_connect import Filesystem

MAX_DEPTH = 32
_TYPES = {"file": fs.FileType.FILE, "dir": fs.FileType.DIRECTORY, "symlink": fs.FileType.SYMLINK}
_KIND_BITS = {"file": stat_module.S_IFREG, "dir": stat_module.S_IFDIR, "symlink": stat_module.S_IFLNK}
WATCH_UNSERVED = "Directory watch is not served by this door yet."


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
    )


class FilesystemService(Filesystem):
    def __init__(self, control: Control, access: DoorAccess) -> None:
        self.control = control
        self.access = access

    def _caller(self, ctx: RequestContext[Any, Any]) -> Caller:
        return caller(self.access, ctx.request_headers)

    async def stat(self, request: fs.StatRequest, ctx: RequestContext[Any, Any]) -> fs.StatResponse:
        try:
            who = self._caller(ctx)
            entry = await self.control.inside.stat(who.principal, who.shell_id, who.path(request.path))
        except ShellsError as exc:
            raise connect_error(exc) from None
        return fs.StatResponse(entry=entry_info(entry))

    async def list_dir(self, request: fs.ListDirRequest, ctx: RequestContext[Any, Any]) -> fs.ListDirResponse:
        """Entries down to ``depth`` levels (1: the directory's own), breadth first, at most
        MAX_LIST_ENTRIES in all."""
        try:
            who = self._caller(ctx)
            depth = request.depth or 1
            if depth > MAX_DEPTH:
                raise InvalidRequest(f"'depth' must be from 1 to {MAX_DEPTH}.", {"field": "depth"})
            found: list[FileEntry] = []
            level = [who.path(request.path)]
            for _ in range(depth):
                below: list[str] = []
                for directory in level:
                    entries = await self.control.inside.list_dir(who.principal, who.shell_id, directory)
                    found += entries
                    below += [e.path for e in entries if e.kind == "dir"]
                    if len(found) > MAX_LIST_ENTRIES:
                        raise PayloadTooLarge(f"More than {MAX_LIST_ENTRIES} entries; list a smaller depth.")
                level = below
        except ShellsError as exc:
            raise connect_error(exc) from None
        return fs.ListDirResponse(entries=[entry_info(e) for e in found])

    async def make_dir(self, request: fs.MakeDirRequest, ctx: RequestContext[Any, Any]) -> fs.MakeDirResponse:
        try:
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
        except ShellsError as exc:
            raise connect_error(exc) from None
        return fs.MakeDirResponse(entry=entry_info(entry))

    async def move(self, request: fs.MoveRequest, ctx: RequestContext[Any, Any]) -> fs.MoveResponse:
        try:
            who = self._caller(ctx)
            entry = await self.control.inside.rename(
                who.principal, who.shell_id, who.path(request.source), who.path(request.destination), DOOR
            )
        except ShellsError as exc:
            raise connect_error(exc) from None
        return fs.MoveResponse(entry=entry_info(entry))

    async def remove(self, request: fs.RemoveRequest, ctx: RequestContext[Any, Any]) -> fs.RemoveResponse:
        try:
            who = self._caller(ctx)
            await self.control.inside.remove(who.principal, who.shell_id, who.path(request.path), True, DOOR)
        except ShellsError as exc:
            raise connect_error(exc) from None
        return fs.RemoveResponse()

    def watch_dir(self, request: fs.WatchDirRequest, ctx: RequestContext[Any, Any]) -> Any:
        raise ConnectError(Code.UNIMPLEMENTED, WATCH_UNSERVED)

    async def create_watcher(
        self, request: fs.CreateWatcherRequest, ctx: RequestContext[Any, Any]
    ) -> fs.CreateWatcherResponse:
        raise ConnectError(Code.UNIMPLEMENTED, WATCH_UNSERVED)

    async def get_watcher_events(
        self, request: fs.GetWatcherEventsRequest, ctx: RequestContext[Any, Any]
    ) -> fs.GetWatcherEventsResponse:
        raise ConnectError(Code.UNIMPLEMENTED, WATCH_UNSERVED)

    async def remove_watcher(
        self, request: fs.RemoveWatcherRequest, ctx: RequestContext[Any, Any]
    ) -> fs.RemoveWatcherResponse:
        raise ConnectError(Code.UNIMPLEMENTED, WATCH_UNSERVED)
