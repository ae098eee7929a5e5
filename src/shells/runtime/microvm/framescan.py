"""Frames out of a microvm's agent port, which the guest's root can write into too.

A VM's tenant owns its kernel: root in the guest can copy the agent's port fd and write whatever it
likes between the agent's frames (the agent writes each frame in one atomic write, ``guest/vm.py``).
So the host does not trust the stream's framing. A frame counts only if its header names a channel
the host opened (ids are random 63-bit numbers the guest cannot guess, ``guest/protocol.py``) with a
sane kind and length; anything else is skipped, and the scan goes on at the next place where an open
channel's id appears. Forged frames, garbage and partial headers are dropped without ever holding the
stream up or ending the link, and the only frames that reach a channel are the agent's own.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from ...guest.protocol import HEADER, HEADER_SIZE, MAX_PAYLOAD, Frame, FrameKind

_ID = struct.Struct(">Q")
_ID_AT = 4
"""Where the channel id sits in a header (after the length)."""
_LENGTH_OVERHEAD = HEADER_SIZE - 4
_KINDS = frozenset(int(kind) for kind in FrameKind)


class FrameScanner:
    """Incremental: feed it what arrived, get the frames of open channels back. Memory is bounded by
    one frame (MAX_PAYLOAD + HEADER_SIZE) plus the last read; ``skipped`` counts dropped bytes."""

    def __init__(self, channels: Collection[int]) -> None:
        self._channels = channels
        """The open channels' ids (a live view: the link's channel table)."""
        self._buffer = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        while len(buffer) - offset >= HEADER_SIZE:
            length, channel, kind = HEADER.unpack_from(buffer, offset)
            if channel in self._channels and kind in _KINDS and 0 <= length - _LENGTH_OVERHEAD <= MAX_PAYLOAD:
                end = offset + 4 + length
                if len(buffer) < end:
                    break
                frames.append(Frame(channel, FrameKind(kind), bytes(buffer[offset + HEADER_SIZE : end])))
                offset = end
                continue
            following = self._next_candidate(offset + 1)
            self.skipped += following - offset
            offset = following
        del buffer[:offset]
        return frames

    def _next_candidate(self, start: int) -> int:
        """The first offset from ``start`` where an open channel's header could begin: where one of
        their ids appears, or else where an id could still be completed by the next read."""
        buffer = self._buffer
        best = max(start, len(buffer) - HEADER_SIZE + 1)
        for channel in list(self._channels):
            at = buffer.find(_ID.pack(channel), start + _ID_AT, best + _ID_AT + _ID.size)
            if at >= 0:
                best = min(best, at - _ID_AT)
        return best
