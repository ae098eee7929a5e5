"""The host's agent link of a microvm, against a scripted peer on real unix sockets: it finds the
start of a fresh stream after junk (resync), it carries one stream across two sockets (pause), it
takes only frames of channels it opened (what a guest's root writes into the port), and it resets a
stream whose agent stopped answering."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shells.domain.errors import AgentError
from shells.guest.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameKind,
    decode_control,
    encode_control,
    encode_frame,
)
from shells.runtime.microvm import link as link_module
from shells.runtime.microvm.framescan import FrameScanner
from shells.runtime.microvm.link import AgentLink, LinkedAgentClient

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(path: Path, peer: Peer) -> asyncio.Server:
    return await asyncio.start_unix_server(peer, path=str(path))


@contextlib.asynccontextmanager
async def _link_to(path: Path, peer: Peer) -> AsyncIterator[AgentLink]:
    """A new link (not attached yet) and ``peer`` serving ``path``; both closed at the end."""
    server = await _serve(path, peer)
    link = AgentLink()
    try:
        yield link
    finally:
        await link.aclose()
        server.close()


async def _next_control(reader: asyncio.StreamReader, decoder: FrameDecoder) -> tuple[int, dict[str, object]]:
    while True:
        frames = decoder.feed(await reader.read(4096))
        if frames:
            return frames[0].channel, decode_control(frames[0].payload)


def test_resync_skips_what_came_before_the_echoed_token(tmp_path: Path) -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(hunt_resync=True)
        writer.write(b"\x00\x00\x00\x09half-a-frame-from-the-parent")  # junk a fork inherits
        channel, message = await _next_control(reader, decoder)
        assert message["op"] == "resync"
        assert message["seed"] == "00ff"  # what the caller adds to the request travels with it
        writer.write(b"more junk" + encode_control(channel, {"op": "ok", "token": message["token"]}))
        channel, message = await _next_control(reader, decoder)
        assert message["op"] == "ping"
        writer.write(encode_control(channel, {"op": "ok", "version": 1}))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with _link_to(tmp_path / "a.sock", peer) as link:
            await link.attach(str(tmp_path / "a.sock"), 5, resync=True, extra=lambda: {"seed": "00ff"})
            assert await LinkedAgentClient(link).ping() == {"version": 1}

    asyncio.run(main())


def test_a_frame_cut_by_a_pause_arrives_whole_over_the_next_socket(tmp_path: Path) -> None:
    reply_parts: list[bytes] = []
    asked = asyncio.Event()

    async def before_pause(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel, message = await _next_control(reader, FrameDecoder())
        assert message["op"] == "stat"
        frame = encode_control(channel, {"op": "ok", "entry": None})
        reply_parts[:] = [frame[:7], frame[7:]]
        writer.write(reply_parts[0])  # the VM pauses mid-frame: its QEMU exits
        await writer.drain()
        writer.close()
        asked.set()

    async def after_resume(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply_parts[1])
        await writer.drain()
        await reader.read()

    async def main() -> None:
        first = await _serve(tmp_path / "1.sock", before_pause)
        second = await _serve(tmp_path / "2.sock", after_resume)
        link = AgentLink()
        try:
            await link.attach(str(tmp_path / "1.sock"), 5, resync=False)
            call = asyncio.ensure_future(LinkedAgentClient(link)._call({"op": "stat", "path": "/"}))
            await asyncio.wait_for(asked.wait(), 5)
            await link.detach()
            assert not call.done()  # still waiting, not failed
            await link.attach(str(tmp_path / "2.sock"), 5, resync=False)
            assert await asyncio.wait_for(call, 5) == {"entry": None}
        finally:
            await link.aclose()
            first.close()
            second.close()

    asyncio.run(main())


def test_forged_frames_and_garbage_never_reach_a_call_nor_end_the_link(tmp_path: Path) -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(hunt_resync=True)
        for _ in range(3):
            channel, message = await _next_control(reader, decoder)
            assert message["op"] == "stat"
            forged = b"".join(
                encode_control(guess, {"op": "ok", "entry": "forged"})
                for guess in (channel - 1, channel + 1, 7)
            )
            writer.write(forged + os.urandom(70_000))
            writer.write(struct.pack(">IQB", MAX_PAYLOAD, 12345, 5))  # a header promising 1 MiB
            writer.write(encode_control(channel, {"op": "ok", "entry": None}))
            await writer.drain()
        await reader.read()

    async def main() -> None:
        async with _link_to(tmp_path / "a.sock", peer) as link:
            await link.attach(str(tmp_path / "a.sock"), 5, resync=False)
            for _ in range(3):
                reply = await asyncio.wait_for(LinkedAgentClient(link)._call({"op": "stat", "path": "/"}), 5)
                assert reply == {"entry": None}

    asyncio.run(main())


def test_a_link_whose_agent_lost_its_step_is_reset_and_works_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The peer answers, then its decoder is thrown out of step (as when the guest's root reads from
    the port): it answers nothing until the host's resync (filler, mark, request) brings it back."""
    monkeypatch.setattr(link_module, "PING_TIMEOUT_S", 1.0)

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(hunt_resync=True)
        answered = 0
        while data := await reader.read(65536):
            for frame in decoder.feed(data):
                if frame.kind is not FrameKind.CONTROL:
                    continue  # the bogus frame its lost step made up
                message = decode_control(frame.payload)
                if message["op"] == "resync":
                    writer.write(
                        b"junk" + encode_control(frame.channel, {"op": "ok", "token": message["token"]})
                    )
                elif message["op"] == "ping":
                    writer.write(encode_control(frame.channel, {"op": "ok", "version": 2}))
                    answered += 1
                    if answered == 1:
                        decoder.feed(struct.pack(">IQB", MAX_PAYLOAD, 1, 5))  # stolen: waits for 1 MiB

    async def main() -> None:
        async with _link_to(tmp_path / "a.sock", peer) as link:
            await link.attach(str(tmp_path / "a.sock"), 5, resync=False)
            assert await LinkedAgentClient(link).ping() == {"version": 2}
            with pytest.raises(AgentError, match="in time"):
                await LinkedAgentClient(link, op_timeout_s=0.5)._call({"op": "stat", "path": "/"})
            for _ in range(100):  # the check pings (PING_TIMEOUT_S), then resyncs
                await asyncio.sleep(0.1)
                with contextlib.suppress(AgentError):
                    if await LinkedAgentClient(link, op_timeout_s=0.5)._call({"op": "ping"}) == {
                        "version": 2
                    }:
                        break
            else:
                raise AssertionError("the link never came back")

    asyncio.run(main())


def test_the_scanner_takes_only_frames_of_open_channels_split_anywhere() -> None:
    open_channels = {111, 2**62 + 5}
    good = [Frame(111, FrameKind.STDOUT, b"out"), Frame(2**62 + 5, FrameKind.CONTROL, b'{"op":"ok"}')]
    noise = [
        encode_frame(112, FrameKind.STDOUT, b"forged"),
        b"\x00\x00",
        struct.pack(">IQB", MAX_PAYLOAD, 999, 2),
        os.urandom(5000),
        struct.pack(">IQB", 2, 111, 2),  # an open channel's id with an impossible length
        struct.pack(">IQB", 20, 111, 9),  # and with an unknown kind
    ]
    data = noise[0] + encode_frame(*good[0]) + b"".join(noise[1:]) + encode_frame(*good[1]) + noise[1]
    for split in range(0, len(data) + 1, 97):
        scanner = FrameScanner(open_channels)
        assert scanner.feed(data[:split]) + scanner.feed(data[split:]) == good
    scanner = FrameScanner(open_channels)
    assert [f for i in range(0, len(data), 7) for f in scanner.feed(data[i : i + 7])] == good
    assert scanner.skipped >= len(data) - sum(len(encode_frame(*f)) for f in good) - HEADER_SIZE


def test_a_resync_unanswered_on_one_connection_is_sent_again_on_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first connection's peer never answers (a guest that missed the host's arrival); the link
    connects anew before its deadline and the second connection's peer answers."""
    monkeypatch.setattr(link_module, "RECONNECT_AFTER_S", 0.5)
    connections = 0

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await reader.read()  # reads everything, answers nothing, until the host hangs up
            return
        channel, message = await _next_control(reader, FrameDecoder(hunt_resync=True))
        assert message["op"] == "resync"
        writer.write(encode_control(channel, {"op": "ok", "token": message["token"]}))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with _link_to(tmp_path / "a.sock", peer) as link:
            await link.attach(str(tmp_path / "a.sock"), 5, resync=True)
            assert connections == 2

    asyncio.run(main())
