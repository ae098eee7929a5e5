"""Files in a shell: ``shell.files``. Uploads and downloads stream, so size is not bounded by memory."""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator

import anyio

from ...domain.errors import FileNotFound
from ...domain.execution import FileEntry
from ..models import from_wire
from .http import AsyncHTTP, Content

CHUNK = 1024 * 1024
LocalPath = str | os.PathLike[str]


class AsyncFiles:
    """The file tree of one shell. Relative paths are relative to ``/workspace``.

    Every method raises ``ShellNotFound`` for an unknown shell, ``InvalidState`` when the shell is
    not running and ``InvalidPath`` for a path that is not allowed; the others are listed below.
    """

    def __init__(self, http: AsyncHTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/files"

    async def read(self, path: str) -> bytes:
        """The whole content of a file (use :meth:`download` for large ones).

        Raises:
            FileNotFound: there is no such file.
            PayloadTooLarge: the file is larger than the server sends (512 MiB).
        """
        response = await self._http.send("GET", self._path, params={"path": path})
        return response.content

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """The content of a text file, decoded.

        Raises:
            FileNotFound: there is no such file.
        """
        data = await self.read(path)
        return data.decode(encoding)

    async def write(self, path: str, data: bytes | str, *, mode: int = 0o644) -> int:
        """Create or replace a file (text is written as UTF-8) and return its size. The file appears
        whole or not at all; its directory must exist (see :meth:`mkdir`).

        Raises:
            FileNotFound: the directory does not exist.
            InvalidRequest: ``path`` is a directory, or ``mode`` is not permission bits.
        """
        content = data.encode() if isinstance(data, str) else data
        return await self._put(path, content, mode)

    async def upload(self, local_path: LocalPath, path: str, *, mode: int = 0o644) -> int:
        """Copy a local file into the shell, streaming it in 1 MiB pieces; return its size.

        Raises:
            FileNotFoundError: the local file does not exist.
            FileNotFound: the directory in the shell does not exist.
            InvalidRequest: ``path`` is a directory, or ``mode`` is not permission bits.
        """

        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(local_path, "rb") as f:
                while chunk := await f.read(CHUNK):
                    yield chunk

        return await self._put(path, chunks, mode)

    async def _put(self, path: str, content: Content, mode: int) -> int:
        params = {"path": path, "mode": f"{mode:o}"}
        answer = await self._http.call("PUT", self._path, params=params, content=content)
        return int(answer["size"])

    async def download(self, path: str, local_path: LocalPath) -> int:
        """Copy a file out of the shell into ``local_path``, streaming it; return its size.

        Raises:
            FileNotFound: there is no such file in the shell.
            PayloadTooLarge: the file is larger than the server sends (512 MiB).
        """
        size = 0
        async with (
            self._http.stream("GET", self._path, params={"path": path}) as response,
            await anyio.open_file(local_path, "wb") as f,
        ):
            async for chunk in response.aiter_bytes(CHUNK):
                await f.write(chunk)
                size += len(chunk)
        return size

    async def list(self, path: str = "/workspace") -> builtins.list[FileEntry]:
        """The entries of a directory, sorted by name.

        Raises:
            FileNotFound: there is no such directory.
            InvalidRequest: ``path`` is not a directory.
        """
        answer = await self._http.call("GET", f"{self._path}/list", params={"path": path})
        return [from_wire(FileEntry, e) for e in answer["entries"]]

    async def stat(self, path: str) -> FileEntry:
        """What a path is: kind, size, mode, modification time.

        Raises:
            FileNotFound: there is no such path.
        """
        return from_wire(FileEntry, await self._http.call("GET", f"{self._path}/stat", params={"path": path}))

    async def exists(self, path: str) -> bool:
        """Whether a path exists in the shell."""
        try:
            await self.stat(path)
        except FileNotFound:
            return False
        return True

    async def mkdir(self, path: str) -> None:
        """Create a directory and its missing parents (no error if it exists)."""
        await self._http.call("POST", f"{self._path}/mkdir", params={"path": path})

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory (which must be empty unless ``recursive``).

        Raises:
            FileNotFound: there is no such path.
            InvalidRequest: a non-empty directory without ``recursive``.
        """
        params = {"path": path, "recursive": "true" if recursive else "false"}
        await self._http.call("DELETE", self._path, params=params)
