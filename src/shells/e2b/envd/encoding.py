"""gzip on envd's ``/files``, as envd negotiates it: ``Content-Encoding: gzip`` on an upload (the whole
body, octet-stream or multipart) and ``Accept-Encoding`` on a download (quality values honoured,
identity always acceptable unless refused with ``q=0``). Uploads inflate as they stream, with the
inflated size capped (``E2B_MAX_INFLATED_BYTES``) so a gzip bomb stops early."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.types import Message

from ...domain.errors import InvalidRequest, PayloadTooLarge
from ...domain.limits import E2B_MAX_INFLATED_BYTES

GZIP = "gzip"
IDENTITY = "identity"
GZIP_WBITS = 31
"""zlib's window bits for the gzip container (header and CRC trailer)."""
INFLATE_STEP = 1024 * 1024
"""Inflated bytes made per step, so one small compressed chunk never becomes a large buffer."""


def _coding(value: str) -> tuple[str, float]:
    """A coding of an ``Accept-Encoding`` / ``Content-Encoding`` list: its name (lowercased) and q."""
    name, _, params = value.strip().partition(";")
    quality = 1.0
    for param in params.split(";"):
        key, _, number = param.strip().partition("=")
        if key.lower() == "q":
            with contextlib.suppress(ValueError):
                quality = float(number)
    return name.strip().lower(), quality


def content_encoding(request: Request) -> str | None:
    """``gzip`` if the body is gzip-encoded, None for identity; any other coding is a 400."""
    header = request.headers.get("content-encoding", "")
    if not header:
        return None
    name = _coding(header)[0]
    if name == IDENTITY:
        return None
    if name != GZIP:
        raise InvalidRequest(f"Unsupported Content-Encoding {header[:40]!r}; supported: gzip.")
    return GZIP


def accepted_encoding(request: Request) -> str | None:
    """The coding to answer a download in: ``gzip`` or None (identity), by quality; 400 if the
    client refuses identity and accepts nothing the door can send."""
    header = request.headers.get("accept-encoding", "")
    if not header:
        return None
    codings = sorted((_coding(v) for v in header.split(",")), key=lambda c: -c[1])
    identity_refused = any(name == IDENTITY and q == 0 for name, q in codings)
    for name, quality in codings:
        if quality == 0:
            continue
        if name == IDENTITY:
            return None
        if name == "*":
            return GZIP if identity_refused else None
        if name == GZIP:
            return GZIP
    if identity_refused:
        raise InvalidRequest("No acceptable encoding in Accept-Encoding; supported: gzip, identity.")
    return None


class _Inflater:
    """A gzip stream (one or more members, as ``gzip`` concatenates them) inflated step by step."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(GZIP_WBITS)
        self._input = b""
        self.made = 0

    def feed(self, data: bytes) -> None:
        self._input += data

    def next(self) -> bytes:
        """Up to INFLATE_STEP inflated bytes of what was fed (b"" when it needs more input)."""
        while self._input:
            if self._zlib.eof:
                self._zlib = zlib.decompressobj(GZIP_WBITS)  # the next member
            data, self._input = self._input, b""
            try:
                out = self._zlib.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise InvalidRequest(f"The gzip body is corrupt: {exc}.") from None
            self._input = self._zlib.unconsumed_tail or self._zlib.unused_data
            self.made += len(out)
            if self.made > E2B_MAX_INFLATED_BYTES:
                raise PayloadTooLarge(
                    f"The gzip body inflates past {E2B_MAX_INFLATED_BYTES} bytes; send smaller files."
                )
            if out:
                return out
        return b""

    def check_end(self) -> None:
        if not self._zlib.eof:
            raise InvalidRequest("The body ends before its gzip stream does.")


def inflated(request: Request) -> Request:
    """The request whose body reads as the inflated gzip stream; PayloadTooLarge once it passes
    E2B_MAX_INFLATED_BYTES, InvalidRequest for data that is not gzip or ends early."""
    receive = request.receive
    inflater = _Inflater()
    more_body = True

    async def decoded() -> Message:
        nonlocal more_body
        while True:
            if out := inflater.next():
                return {"type": "http.request", "body": out, "more_body": True}
            if not more_body:
                inflater.check_end()
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] != "http.request":
                return message
            inflater.feed(message.get("body", b""))
            more_body = message.get("more_body", False)

    return Request(request.scope, decoded)


async def deflated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as one gzip stream."""
    deflater = zlib.compressobj(wbits=GZIP_WBITS)
    async for chunk in chunks:
        if out := deflater.compress(chunk):
            yield out
    yield deflater.flush()
