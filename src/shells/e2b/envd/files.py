"""envd's plain-HTTP routes: ``GET /health``, ``GET /files`` (download) and ``POST /files``
(multipart or octet-stream upload, parents made, owned by the caller's user), each with gzip
(``encoding``) and by signed URL (``signing``) as envd serves them."""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import AsyncIterator

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from ...control.service import Control
from ...domain.errors import InvalidRequest, PayloadTooLarge, ShellsError
from ...domain.limits import E2B_MAX_METADATA, E2B_MAX_UPLOAD_BYTES
from ...domain.states import ShellState
from ..access import DoorAccess
from ..errors import envd_http_error
from ..sandboxes import DOOR
from ..signing import Operation
from .caller import Caller, caller, signed_caller
from .encoding import GZIP, accepted_encoding, content_encoding, deflated, inflated

UPLOAD_CHUNK = 1024 * 1024
METADATA_HEADER = "x-metadata-"
METADATA_XATTR = "user.e2b."
"""E2B file metadata lives in these extended attributes."""
MAX_UPLOAD_PARTS = 1000


def _capped(request: Request) -> Request:
    """The request with its body cut off (PayloadTooLarge) past E2B_MAX_UPLOAD_BYTES."""
    received = 0
    receive = request.receive

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > E2B_MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"An upload may hold at most {E2B_MAX_UPLOAD_BYTES} bytes.")
        return message

    return Request(request.scope, counted)


def _metadata(request: Request) -> dict[str, str]:
    """``X-Metadata-<key>: value`` headers as the extended attributes ``user.e2b.<key>`` (keys
    lowercased, as envd does)."""
    found: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.startswith(METADATA_HEADER):
            key = name[len(METADATA_HEADER) :]
            if not key or not all(c.isalnum() or c in "-_." for c in key):
                raise InvalidRequest(f"Metadata key {key[:60]!r} may hold letters, digits, '-', '_', '.'.")
            found[METADATA_XATTR + key] = value
    if len(found) > E2B_MAX_METADATA:
        raise InvalidRequest(f"At most {E2B_MAX_METADATA} metadata entries on a file.")
    return found


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK):
        yield chunk


class EnvdFiles:
    def __init__(self, control: Control, access: DoorAccess) -> None:
        self.control = control
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/files", self.download, methods=["GET"]),
            Route("/files", self.upload, methods=["POST"]),
        ]

    def _caller(self, request: Request, operation: Operation | None = None) -> Caller:
        """By the access token header; else, for a file operation, by the URL's signature."""
        query = request.query_params
        if operation is not None and "x-access-token" not in request.headers and "signature" in query:
            return signed_caller(self.access, request.headers, query, operation)
        return caller(self.access, request.headers, query.get("username") or None)

    async def health(self, request: Request) -> Response:
        """204 while the sandbox runs; 502 (the SDK's "not running") when it is paused, stopped or gone."""
        try:
            who = self._caller(request)
            shell = self.control.shells.get(who.principal, who.shell_id)
        except ShellsError as exc:
            return envd_http_error(exc)
        return Response(status_code=204 if shell.state is ShellState.RUNNING else 502)

    async def download(self, request: Request) -> Response:
        try:
            who = self._caller(request, "read")
            path = who.path(request.query_params.get("path", ""))
            encoding = accepted_encoding(request)
            chunks = await self.control.inside.read_file(who.principal, who.shell_id, path)
            first = await anext(chunks, b"")  # errors (no such file) before the answer starts
        except ShellsError as exc:
            return envd_http_error(exc)

        async def body() -> AsyncIterator[bytes]:
            yield first
            async for chunk in chunks:
                yield chunk

        if encoding != GZIP:
            return StreamingResponse(body(), media_type="application/octet-stream")
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = {"Content-Encoding": GZIP, "Vary": "Accept-Encoding"}
        return StreamingResponse(deflated(body()), media_type=media_type, headers=headers)

    async def upload(self, request: Request) -> Response:
        try:
            who = self._caller(request, "write")
            request = _capped(request)
            if content_encoding(request) == GZIP:
                request = inflated(request)
            metadata = _metadata(request)
            content_type = request.headers.get("content-type", "")
            target = request.query_params.get("path")
            written: list[dict[str, str]] = []
            if content_type.startswith("multipart/form-data"):
                async with request.form(max_files=MAX_UPLOAD_PARTS, max_fields=MAX_UPLOAD_PARTS) as form:
                    uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
                    if not uploads:
                        raise InvalidRequest("The multipart body holds no file.", {"field": "file"})
                    if target and len(uploads) > 1:
                        raise InvalidRequest("Several files cannot go to one 'path'; name each in its part.")
                    for upload in uploads:
                        path = target or upload.filename
                        written.append(await self._write(who, path or "", _upload_chunks(upload), metadata))
            elif content_type.startswith("application/octet-stream"):
                written.append(await self._write(who, target or "", request.stream(), metadata))
            else:
                raise InvalidRequest("Send multipart/form-data or application/octet-stream.")
        except ShellsError as exc:
            return envd_http_error(exc)
        return JSONResponse(written)

    async def _write(
        self, who: Caller, path: str, chunks: AsyncIterator[bytes], metadata: dict[str, str]
    ) -> dict[str, str]:
        full = who.path(path)
        inside = self.control.inside
        await inside.mkdir(
            who.principal, who.shell_id, posixpath.dirname(full) or "/", DOOR, owner=who.run_as
        )
        await inside.write_file(
            who.principal, who.shell_id, full, chunks, 0o644, DOOR, owner=who.run_as, xattrs=metadata
        )
        return {"path": full, "name": posixpath.basename(full), "type": "file"}
