# Generated from src/shells/sdk/_async/files.py by scripts/unasync.py; edit that file and run the script.
"""Files in a shell: ``shell.files``. Uploads and downloads stream, so size is not bounded by memory."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator

from ...domain.errors import FileNotFound
from ...domain.execution import FileEntry
from ..models import from_wire
from .http import HTTP, Content

CHUNK = 1024 * 1024
LocalPath = str | os.PathLike[str]


class Files:
    """The file tree of one shell. Relative paths are relative to ``/workspace``.

    Every method raises ``ShellNotFound`` for an unknown shell, ``InvalidState`` when the shell is
    not running and ``InvalidPath`` for a path that is not allowed; the others are listed below.
    """

    def __init__(self, http: HTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/files"

    def read(self, path: str) -> bytes:
        """The whole content of a file (use :meth:`download` for large ones).

        Raises:
            FileNotFound: there is no such file.
            PayloadTooLarge: the file is larger than the server sends (512 MiB).
        """
        response = self._http.send("GET", self._path, params={"path": path})
        return response.content

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        """The content of a text file, decoded.

        Raises:
            FileNotFound: there is no such file.
        """
        data = self.read(path)
        return data.decode(encoding)

    def write(self, path: str, data: bytes | str, *, mode: int = 0o644) -> int:
        """Create or replace a file (text is written as UTF-8) and return its size. The file appears
        whole or not at all; its directory must exist (see :meth:`mkdir`).

        Raises:
            FileNotFound: the directory does not exist.
            InvalidRequest: ``path`` is a directory, or ``mode`` is not permission bits.
        """
        content = data.encode() if isinstance(data, str) else data
        return self._put(path, content, mode)

    def upload(self, local_path: LocalPath, path: str, *, mode: int = 0o644) -> int:
        """Copy a local file into the shell, streaming it in 1 MiB pieces; return its size.

        Raises:
            FileNotFoundError: the local file does not exist.
            FileNotFound: the directory in the shell does not exist.
            InvalidRequest: ``path`` is a directory, or ``mode`` is not permission bits.
        """

        def chunks() -> Iterator[bytes]:
            with open(local_path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return self._put(path, chunks, mode)

    def _put(self, path: str, content: Content, mode: int) -> int:
        params = {"path": path, "mode": f"{mode:o}"}
        answer = self._http.call("PUT", self._path, params=params, content=content)
        return int(answer["size"])

    def download(self, path: str, local_path: LocalPath) -> int:
        """Copy a file out of the shell into ``local_path``, streaming it; return its size.

        Raises:
            FileNotFound: there is no such file in the shell.
            PayloadTooLarge: the file is larger than the server sends (512 MiB).
        """
        size = 0
        with (
            self._http.stream("GET", self._path, params={"path": path}) as response,
            open(local_path, "wb") as f,
        ):
            for chunk in response.iter_bytes(CHUNK):
                f.write(chunk)
                size += len(chunk)
        return size

    def list(self, path: str = "/workspace") -> builtins.list[FileEntry]:
        """The entries of a directory, sorted by name.

        Raises:
            FileNotFound: there is no such directory.
            InvalidRequest: ``path`` is not a directory.
        """
        answer = self._http.call("GET", f"{self._path}/list", params={"path": path})
        return [from_wire(FileEntry, e) for e in answer["entries"]]

    def stat(self, path: str) -> FileEntry:
        """What a path is: kind, size, mode, modification time.

        Raises:
            FileNotFound: there is no such path.
        """
        return from_wire(FileEntry, self._http.call("GET", f"{self._path}/stat", params={"path": path}))

    def exists(self, path: str) -> bool:
        """Whether a path exists in the shell."""
        try:
            self.stat(path)
        except FileNotFound:
            return False
        return True

    def mkdir(self, path: str) -> None:
        """Create a directory and its missing parents (no error if it exists)."""
        self._http.call("POST", f"{self._path}/mkdir", params={"path": path})

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory (which must be empty unless ``recursive``).

        Raises:
            FileNotFound: there is no such path.
            InvalidRequest: a non-empty directory without ``recursive``.
        """
        params = {"path": path, "recursive": "true" if recursive else "false"}
        self._http.call("DELETE", self._path, params=params)
