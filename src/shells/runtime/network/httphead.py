"""The head of an HTTP/1.x request: parsed strictly, edited, and written back out.

The ingress proxy reads exactly one request head per connection, decides from it, and then only
copies bytes. So this parser is strict where a lenient one would let a request mean one thing here
and another to the service behind (obs-fold, bare CR/LF, whitespace before the colon, duplicate Host,
Content-Length together with Transfer-Encoding): such requests are refused, not repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSIONS = ("HTTP/1.0", "HTTP/1.1")


class MalformedHead(ValueError):
    """The request head is not HTTP/1.x this proxy will forward; the message says why."""


@dataclass
class RequestHead:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    """In arrival order, names as sent; look-ups are case-insensitive."""

    def get(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    def without(self, *names: str) -> list[tuple[str, str]]:
        lowered = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in lowered]

    def wants_upgrade(self) -> bool:
        """Whether ``Connection`` lists ``upgrade`` (a WebSocket handshake, for one)."""
        tokens = {t.strip().lower() for v in self.get_all("connection") for t in v.split(",")}
        return "upgrade" in tokens and self.get("upgrade") is not None


def parse_request_head(raw: bytes) -> RequestHead:
    """Parse a head that ends with the blank line (``\\r\\n\\r\\n``). Raises ``MalformedHead``."""
    if not raw.endswith(b"\r\n\r\n"):
        raise MalformedHead("the head does not end with an empty line")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise MalformedHead("the request line is not 'METHOD TARGET HTTP/1.1'")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise MalformedHead("the method is not a token")
    if version not in _VERSIONS:
        raise MalformedHead("only HTTP/1.0 and HTTP/1.1 are served")
    if not target.startswith("/") or any(c <= " " or c == "\x7f" for c in target):
        raise MalformedHead("the target must be a path such as /index.html")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise MalformedHead(f"bad header line {line[:40]!r}")
        value = value.strip(" \t")
        if any(c in value for c in "\r\n\x00"):
            raise MalformedHead(f"header {name} holds a control character")
        headers.append((name, value))
    head = RequestHead(method, target, version, headers)
    if len(head.get_all("host")) > 1:
        raise MalformedHead("more than one Host header")
    if head.get("transfer-encoding") is not None and head.get("content-length") is not None:
        raise MalformedHead("both Content-Length and Transfer-Encoding")
    return head


def render_request_head(method: str, target: str, version: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} {version}", *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")
