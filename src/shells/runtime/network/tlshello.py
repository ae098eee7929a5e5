"""The server name (SNI) of a TLS ClientHello, read from its first record. Pure.

Wire facts (RFC 8446 §4.1.2, RFC 6066 §3): a record is type 22 (handshake), a version, a 2-byte
length; the handshake is type 1 (ClientHello), a 3-byte length, then version, 32 random bytes, the
session id, cipher suites and compression methods (each length-prefixed), then the extensions,
where type 0 holds a list of (type 0 = host name, length-prefixed name).
"""

from __future__ import annotations

RECORD_HEADER = 5
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0


def record_length(header: bytes) -> int | None:
    """The payload length of a TLS handshake record starting with ``header`` (5 bytes), or None if it
    is not one (plain HTTP, SSH, anything else: passed through untouched)."""
    if len(header) < RECORD_HEADER or header[0] != _HANDSHAKE or header[1] != 3:
        return None
    return int.from_bytes(header[3:5])


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n))

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.number(length_bytes))


def server_name(record: bytes) -> str | None:
    """The lower-case host name a ClientHello in ``record`` (header included) asks for; None when
    there is none, the hello does not fit in this record, or the bytes are not a ClientHello."""
    try:
        r = _Reader(record[RECORD_HEADER:])
        if r.number(1) != _CLIENT_HELLO:
            return None
        hello = _Reader(r.take(r.number(3)))
        hello.take(2 + 32)
        hello.vector(1)  # session id
        hello.vector(2)  # cipher suites
        hello.vector(1)  # compression methods
        extensions = _Reader(hello.vector(2))
        while extensions.at < len(extensions.data):
            kind, body = extensions.number(2), extensions.vector(2)
            if kind != _SERVER_NAME:
                continue
            names = _Reader(_Reader(body).vector(2))
            while names.at < len(names.data):
                name_type, name = names.number(1), names.vector(2)
                if name_type == 0:
                    text = name.decode("ascii").lower().rstrip(".")
                    return text if text and all(c.isalnum() or c in "-." for c in text) else None
        return None
    except (ValueError, UnicodeDecodeError):
        return None
