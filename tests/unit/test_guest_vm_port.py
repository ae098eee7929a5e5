"""The agent's writes to a microvm's port: whole frames of at most ATOMIC_WRITE bytes per write, so
bytes the guest's root writes into the same port can fall between our frames, never inside one."""

from __future__ import annotations

import os
from typing import cast

import pytest

from shells.guest.loop import Agent
from shells.guest.protocol import Frame, FrameDecoder, FrameKind, encode_control, encode_frame
from shells.guest.vm import ATOMIC_WRITE, SerialConnection, atomic_frames


class _Loop:
    """What a connection needs of the agent's loop, without its signal handlers."""

    def __init__(self) -> None:
        self.connections: set[object] = set()
        self.soon: list[object] = []

    def later(self, delay_s: float, callback: object) -> None:
        pass

    def set_interest(self, fd: int, events: int, callback: object = None) -> None:
        pass


def test_output_frames_are_split_and_control_frames_are_not() -> None:
    big = encode_frame(7, FrameKind.STDOUT, os.urandom(100_000))
    pieces = atomic_frames(big)
    assert all(len(p) <= ATOMIC_WRITE for p in pieces) and len(pieces) == 4
    frames = FrameDecoder().feed(b"".join(pieces))
    assert {f.channel for f in frames} == {7} and {f.kind for f in frames} == {FrameKind.STDOUT}
    assert b"".join(f.payload for f in frames) == big[13:]
    control = encode_control(7, {"op": "ok", "x": "y" * 40_000})
    assert atomic_frames(control) == [control]


def test_every_write_is_whole_frames_within_the_atomic_size(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    blocked = [True]

    def fake_write(fd: int, data: bytes | memoryview) -> int:
        if blocked[0]:
            raise BlockingIOError
        chunk = bytes(data)[:ATOMIC_WRITE]  # virtio_console takes at most this much per write
        writes.append(chunk)
        return len(chunk)

    read_fd, write_fd = os.pipe()
    try:
        connection = SerialConnection(cast(Agent, _Loop()), write_fd)
        connection.attached = True
        monkeypatch.setattr(os, "write", fake_write)
        sent = [
            encode_frame(1, FrameKind.STDOUT, b"a" * 70_000),
            encode_control(2, {"op": "ok", "big": "b" * 50_000}),
            *(encode_frame(3, FrameKind.STDERR, bytes([i]) * 900) for i in range(60)),
            encode_control(4, {"op": "exit"}),
        ]
        for frame in sent:
            connection.send(frame)  # the first is refused (EAGAIN): everything queues
        blocked[0] = False
        for _ in range(100):
            if connection._out:
                connection._flush()
        monkeypatch.undo()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    decoder = FrameDecoder()
    cut_control = 0
    for chunk in writes:
        got = decoder.feed(chunk)
        if not got:  # only the control frame larger than one write may span writes
            cut_control += 1
    assert cut_control == 1
    everything = FrameDecoder().feed(b"".join(writes))
    assert b"".join(f.payload for f in everything if f.channel == 1) == b"a" * 70_000
    assert [f for f in everything if f.channel in (2, 4)] == [
        Frame(2, FrameKind.CONTROL, sent[1][13:]),
        Frame(4, FrameKind.CONTROL, sent[-1][13:]),
    ]
    assert all(len(w) <= ATOMIC_WRITE for w in writes)
