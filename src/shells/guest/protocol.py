"""The wire protocol between the host and the in-shell agent.

One byte stream (a container's unix socket, a microvm's virtio-serial port) carries many channels.
Every frame is::

    uint32 length   big-endian, counts everything after itself: 8 + 1 + len(payload)
    uint64 channel  big-endian, chosen by the host at random (``new_channel_id``), unique while open
    uint8  kind     one of FrameKind
    bytes  payload  at most MAX_PAYLOAD bytes

Channel ids are random, not sequential, because inside a microvm the guest's root can write into the
agent's port too: it cannot guess the id of a channel it was not told, so it cannot forge another
command's output or end (the host drops frames for channels it does not know, ``runtime/microvm``).

A channel starts with a CONTROL frame from the host (a JSON object with an "op" key) and ends with exactly
one final CONTROL frame from the agent: "exit" for exec, "ok" for other ops, or "error" with a code.

Both ends treat the other as untrusted, so decoding is strict: framing faults raise ``ProtocolError`` (the
receiver drops the whole connection) and malformed JSON or fields raise ``BadMessage`` (the agent answers
that one channel with an error; the host raises). A microvm's port is the exception, since it is never
dropped: there the agent's decoder hunts for the next ``RESYNC_MARK`` after a fault, and the host keeps
only frames of channels it opened (``runtime/microvm/framescan.py``).

Stdlib only: this module is also imported inside the sandbox, by an interpreter that only sees ``guest``.
"""

from __future__ import annotations

import enum
import json
import os
import struct
from collections import namedtuple
from collections.abc import Mapping

TYPE_CHECKING = False
"""True for type checkers only; ``typing.TYPE_CHECKING`` would import typing at the agent's start."""

PROTOCOL_VERSION = 2
SERVE_SUDO = "--serve-sudo"
"""The agent argument that makes a container shell's agent serve ``sudo`` (``guest/sudo_server.py``);
never given where the agent runs on a host's own file system (tests), where it would write its shim."""
MAX_PAYLOAD = 1024 * 1024
"""Largest payload of a single frame; a longer length field is a protocol error."""
EXEC_CHUNK = 64 * 1024
"""Largest STDOUT/STDERR payload the agent sends."""
FILE_CHUNK = 256 * 1024
"""Largest DATA payload either side sends for file content."""
MAX_CHANNEL = 2**64 - 1
CHANNEL_ID_BITS = 63
"""The host's channel ids are random in [1, 2**63): unguessable, and still a signed 64-bit integer."""
RESYNC_MARK = bytes(4) + b"\xffshells-resync\xff"
"""What the host sends right before a ``resync`` request. Its zero length field is a framing fault to
a decoder in step, and a decoder that lost its step (a desynchronised port) hunts for the mark, so the
request after it is read from its first byte in either case (``FrameDecoder(hunt_resync=True)``)."""

HEADER = struct.Struct(">IQB")
HEADER_SIZE = HEADER.size
_LENGTH_OVERHEAD = HEADER_SIZE - 4  # channel + kind, counted by the length field


class FrameKind(enum.IntEnum):
    CONTROL = 1
    STDOUT = 2
    STDERR = 3
    STDIN = 4
    DATA = 5
    EOF = 6


class ProtocolError(Exception):
    """The peer broke the framing; the connection cannot be trusted any more."""


class BadMessage(Exception):
    """A well-framed CONTROL message is malformed (bad JSON, missing or mistyped field)."""


if TYPE_CHECKING:
    from typing import NamedTuple

    class Frame(NamedTuple):
        channel: int
        kind: FrameKind
        payload: bytes

else:  # the same tuple without importing typing, a sixth of the agent's start (``agent_runtime``)
    Frame = namedtuple("Frame", ("channel", "kind", "payload"))


def new_channel_id() -> int:
    """A fresh random channel id (the caller retries on the rare clash with an open one)."""
    return int.from_bytes(os.urandom(8), "big") >> (64 - CHANNEL_ID_BITS) or 1


def frame_parts(frames: bytes | bytearray, offset: int = 0) -> tuple[int, int, int]:
    """(channel, kind, total size) of the frame encoded at ``offset``, read without validation: for
    a writer that walks or re-chunks its own frames."""
    length, channel, kind = HEADER.unpack_from(frames, offset)
    return channel, kind, 4 + length


def encode_frame(channel: int, kind: FrameKind, payload: bytes = b"") -> bytes:
    if not 0 <= channel <= MAX_CHANNEL:
        raise ValueError(f"channel {channel} is out of range")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD")
    return HEADER.pack(len(payload) + _LENGTH_OVERHEAD, channel, kind) + payload


def encode_control(channel: int, message: Mapping[str, object]) -> bytes:
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return encode_frame(channel, FrameKind.CONTROL, payload)


def decode_header(header: bytes) -> tuple[int, int, FrameKind]:
    """Validate a frame header; return (payload length, channel, kind)."""
    return _validate_header(*HEADER.unpack(header))


def _validate_header(length: int, channel: int, kind: int) -> tuple[int, int, FrameKind]:
    if length < _LENGTH_OVERHEAD:
        raise ProtocolError(f"frame length {length} is shorter than its header")
    if length - _LENGTH_OVERHEAD > MAX_PAYLOAD:
        raise ProtocolError(f"frame payload of {length - _LENGTH_OVERHEAD} bytes exceeds {MAX_PAYLOAD}")
    try:
        return length - _LENGTH_OVERHEAD, channel, FrameKind(kind)
    except ValueError:
        raise ProtocolError(f"unknown frame kind {kind}") from None


class FrameDecoder:
    """Incremental decoder for a non-blocking reader: feed it whatever arrived, get whole frames back.

    It holds at most one partial frame, so its memory is bounded by MAX_PAYLOAD + HEADER_SIZE plus the
    last read; an oversized length is rejected as soon as its header is complete. With ``hunt_resync``
    a framing fault does not raise: the decoder drops bytes up to the next ``RESYNC_MARK`` and goes on
    from there (``hunting`` says it is looking).
    """

    def __init__(self, *, hunt_resync: bool = False) -> None:
        self._buffer = bytearray()
        self._hunt_resync = hunt_resync
        self.hunting = False

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        while True:
            if self.hunting:
                offset = self._hunt(offset)
                if self.hunting:
                    break
            if len(self._buffer) - offset < HEADER_SIZE:
                break
            try:
                size, channel, kind = _validate_header(*HEADER.unpack_from(self._buffer, offset))
            except ProtocolError:
                if not self._hunt_resync:
                    raise
                self.hunting = True
                continue
            end = offset + HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            frames.append(Frame(channel, kind, bytes(self._buffer[offset + HEADER_SIZE : end])))
            offset = end
        del self._buffer[:offset]
        return frames

    def _hunt(self, offset: int) -> int:
        """Past the next RESYNC_MARK (and no longer hunting), or as far as the mark cannot start."""
        at = self._buffer.find(RESYNC_MARK, offset)
        if at < 0:
            return max(offset, len(self._buffer) - len(RESYNC_MARK) + 1)
        self.hunting = False
        return at + len(RESYNC_MARK)


def _reject_constant(name: str) -> object:
    raise BadMessage(f"JSON constant {name} is not allowed")


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise BadMessage("JSON object has duplicate keys")
    return result


def decode_control(payload: bytes) -> dict[str, object]:
    """Parse a CONTROL payload: strict UTF-8 JSON, an object, with a string "op"."""
    try:
        message = json.loads(
            payload.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_object
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadMessage(f"control payload is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise BadMessage("control payload must be a JSON object")
    get_str(message, "op")
    return message


# Typed accessors. JSON booleans are Python ints, so the int/float readers reject them explicitly.

_MISSING = object()


def _get(message: Mapping[str, object], key: str, default: object) -> object:
    value = message.get(key, default)
    if value is _MISSING:
        raise BadMessage(f"field {key!r} is required")
    return value


def get_str(message: Mapping[str, object], key: str, default: object = _MISSING) -> str:
    value = _get(message, key, default)
    if not isinstance(value, str):
        raise BadMessage(f"field {key!r} must be a string")
    return value


def get_bool(message: Mapping[str, object], key: str, default: object = _MISSING) -> bool:
    value = _get(message, key, default)
    if not isinstance(value, bool):
        raise BadMessage(f"field {key!r} must be a boolean")
    return value


def get_int(message: Mapping[str, object], key: str, default: object = _MISSING) -> int:
    value = _get(message, key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadMessage(f"field {key!r} must be an integer")
    return value


def get_optional_int(message: Mapping[str, object], key: str) -> int | None:
    if message.get(key) is None:
        return None
    return get_int(message, key)


def get_float(message: Mapping[str, object], key: str, default: object = _MISSING) -> float:
    value = _get(message, key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadMessage(f"field {key!r} must be a number")
    return float(value)


def get_str_list(message: Mapping[str, object], key: str) -> list[str]:
    value = _get(message, key, _MISSING)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadMessage(f"field {key!r} must be a list of strings")
    return value


def get_str_map(message: Mapping[str, object], key: str, default: object = _MISSING) -> dict[str, str]:
    value = _get(message, key, default)
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise BadMessage(f"field {key!r} must be an object of strings")
    return value
