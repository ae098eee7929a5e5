"""A forged agent: it speaks the real protocol over a unix socket but lies (endless output for
``true``, a frame larger than the protocol allows, a file that never ends, a listing too long, calls
it never answers). The real host-side client must hold every limit itself (``domain.limits``)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from shells.domain.errors import AgentError, PayloadTooLarge, ShellBusy
from shells.domain.execution import ExecExit, ExecSpec, OutputChunk, collect
from shells.domain.limits import MAX_AGENT_CHANNELS
from shells.guest.protocol import (
    HEADER,
    MAX_PAYLOAD,
    FrameDecoder,
    FrameKind,
    decode_control,
    encode_control,
    encode_frame,
)
from shells.runtime.agent_client import AgentClient

Lie = Callable[[int, dict[str, object], asyncio.StreamWriter], Awaitable[None]]
MIB = 1024 * 1024
FLOOD_BYTES = 96 * MIB


@contextlib.asynccontextmanager
async def forged_agent(lie: Lie) -> AsyncIterator[str]:
    """A unix socket whose peer answers every call's first CONTROL frame with ``lie``."""

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.kind is FrameKind.CONTROL:
                        await lie(frame.channel, decode_control(frame.payload), writer)
        writer.close()

    directory = tempfile.mkdtemp(prefix="shells-forged-", dir="/tmp")
    path = str(Path(directory) / "agent.sock")
    server = await asyncio.start_unix_server(peer, path=path, backlog=4 * MAX_AGENT_CHANNELS)
    try:
        yield path
    finally:
        server.close()
        Path(path).unlink(missing_ok=True)
        Path(directory).rmdir()


async def endless_output(channel: int, message: dict[str, object], writer: asyncio.StreamWriter) -> None:
    """``true`` answered with FLOOD_BYTES of output in the largest frames, then an honest-looking exit."""
    if message["op"] != "exec":
        return
    writer.write(encode_control(channel, {"op": "started", "pid": 7}))
    chunk = encode_frame(channel, FrameKind.STDOUT, b"y" * MAX_PAYLOAD)
    for _ in range(FLOOD_BYTES // MAX_PAYLOAD):
        writer.write(chunk)
        await writer.drain()
    exit_report = {"op": "exit", "exit_code": 0, "signal": None, "timed_out": False}
    writer.write(encode_control(channel, exit_report | {"truncated": False, "duration_ms": 1.0}))
    await writer.drain()


@pytest.mark.anyio
async def test_output_past_the_cap_is_dropped_by_the_host() -> None:
    async with forged_agent(endless_output) as path:
        cap = 3 * MIB + 5
        received = 0
        async for event in AgentClient(path).exec(ExecSpec(argv=("true",), output_cap_bytes=cap)):
            if isinstance(event, OutputChunk):
                received += len(event.data)
            elif isinstance(event, ExecExit):
                done = event
    assert received == cap
    assert done.truncated is True  # the agent said False


@pytest.mark.anyio
async def test_an_answer_given_whole_holds_at_most_its_cap() -> None:
    tracemalloc.start()
    try:
        async with forged_agent(endless_output) as path:
            result = await collect(AgentClient(path).exec(ExecSpec(argv=("true",))), cap=2 * MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(result.stdout) == 2 * MIB and result.exit.truncated is True
    assert peak < 32 * MIB, f"{peak / MIB:.0f} MiB held for {FLOOD_BYTES // MIB} MiB of output"


@pytest.mark.anyio
async def test_a_frame_larger_than_the_protocol_allows_ends_the_connection_unread() -> None:
    async def huge_frame(channel: int, message: dict[str, object], writer: asyncio.StreamWriter) -> None:
        writer.write(HEADER.pack(2**32 - 1, channel, FrameKind.CONTROL))  # 4 GiB announced
        await writer.drain()

    async with forged_agent(huge_frame) as path:
        with pytest.raises(AgentError, match="broke the protocol"):
            await asyncio.wait_for(AgentClient(path).ping(), 5)


@pytest.mark.anyio
async def test_a_file_that_never_ends_stops_at_the_read_cap() -> None:
    async def endless_file(channel: int, message: dict[str, object], writer: asyncio.StreamWriter) -> None:
        chunk = encode_frame(channel, FrameKind.DATA, b"z" * MAX_PAYLOAD)
        with contextlib.suppress(ConnectionError):
            while not writer.is_closing():
                writer.write(chunk)
                await writer.drain()

    received = 0
    async with forged_agent(endless_file) as path:
        with pytest.raises(PayloadTooLarge):
            async for chunk in AgentClient(path).read_file("/workspace/f", 4 * MIB):
                received += len(chunk)
    assert received <= 4 * MIB


@pytest.mark.anyio
async def test_a_listing_longer_than_the_limit_is_refused() -> None:
    async def long_listing(channel: int, message: dict[str, object], writer: asyncio.StreamWriter) -> None:
        writer.write(encode_control(channel, {"op": "ok", "entries": [0] * 300_000}))
        await writer.drain()

    async with forged_agent(long_listing) as path:
        with pytest.raises(AgentError, match="malformed directory listing"):
            await AgentClient(path).list_dir("/workspace")


@pytest.mark.anyio
async def test_calls_open_to_one_agent_are_capped_by_the_host() -> None:
    async def never_answers(channel: int, message: dict[str, object], writer: asyncio.StreamWriter) -> None:
        return

    async with forged_agent(never_answers) as path:
        client = AgentClient(path)
        calls = [asyncio.ensure_future(client.stat("/workspace")) for _ in range(MAX_AGENT_CHANNELS)]
        await asyncio.sleep(0.2)
        assert not any(call.done() for call in calls)
        with pytest.raises(ShellBusy):
            await client.stat("/workspace")
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        with pytest.raises(AgentError, match="did not answer"):  # room again once they ended
            await AgentClient(path, op_timeout_s=0.2).stat("/workspace")
