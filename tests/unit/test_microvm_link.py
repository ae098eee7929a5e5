"""The host's agent link of a microvm, against a scripted peer on real unix sockets: it finds the
start of a fresh stream after junk (resync), and it carries one stream across two sockets (pause)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from shells.guest.protocol import FrameDecoder, decode_control, encode_control
from shells.runtime.microvm.link import AgentLink, LinkedAgentClient

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(path: Path, peer: Peer) -> asyncio.Server:
    return await asyncio.start_unix_server(peer, path=str(path))


async def _next_control(reader: asyncio.StreamReader, decoder: FrameDecoder) -> tuple[int, dict[str, object]]:
    while True:
        frames = decoder.feed(await reader.read(4096))
        if frames:
            return frames[0].channel, decode_control(frames[0].payload)


def test_resync_skips_what_came_before_the_echoed_token(tmp_path: Path) -> None:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
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
        server = await _serve(tmp_path / "a.sock", peer)
        link = AgentLink()
        try:
            await link.attach(str(tmp_path / "a.sock"), 5, resync=True, extra=lambda: {"seed": "00ff"})
            assert await LinkedAgentClient(link).ping() == {"version": 1}
        finally:
            await link.aclose()
            server.close()

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
