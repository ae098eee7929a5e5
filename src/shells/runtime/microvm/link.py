"""The host's one connection to a microvm's agent, which outlives the QEMU processes behind it.

A VM's agent serves a single virtio-serial port, which QEMU exposes as a unix socket. Every call is a
channel multiplexed on it (``agent_client._Channel``). The byte stream is treated as one stream across
QEMU processes: when a VM is paused its QEMU exits and the socket ends, and when a new QEMU restores it
the link attaches to the new socket and carries on where it stopped, in both directions, so a command
that was streaming when the VM paused keeps streaming to the same caller after the resume:

- guest → host: whatever QEMU had not yet written is part of the saved device state, and a frame cut
  at the end of one socket continues at the start of the next (the frame decoder is kept);
- host → guest: before the VM is stopped, writing stops and the link waits until QEMU has read every
  byte it sent (``SIOCOUTQ`` reaches 0), since bytes left in a socket die with that QEMU.

A link to a VM whose past it does not know (a fork, a shell created from a snapshot, any VM after a
server restart) starts with ``resync``: the agent drops every older channel and echoes a token, and
the link discards incoming bytes until that exact reply, where the new stream begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import struct
import time
from collections.abc import AsyncIterator, Callable

from ...domain.errors import AgentError
from ...guest.protocol import MAX_CHANNEL, FrameDecoder, ProtocolError, encode_control
from ..agent_client import DEFAULT_OP_TIMEOUT_S, AgentClient, ChannelTable, _Channel

SIOCOUTQ = 0x5411
READ_SIZE = 256 * 1024
DRAIN_TIMEOUT_S = 2.0
RESYNC_TRIES = 3
SEED_BYTES = 64


def sync_fields(**extra: object) -> dict[str, object]:
    """What a guest needs after every boot, restore and fork: the time, and randomness of its own."""
    return {"time_ns": time.time_ns(), "seed": os.urandom(SEED_BYTES).hex(), **extra}


def _unsent_bytes(writer: asyncio.StreamWriter) -> int:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return 0
    value = fcntl.ioctl(sock.fileno(), SIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", value)[0])


class AgentLink(ChannelTable):
    """The channel table of one VM, its stream carried over changing sockets."""

    def __init__(self) -> None:
        super().__init__()
        self._decoder = FrameDecoder()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._attached = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._pending = bytearray()
        self._hunt: bytes | None = None
        self._hunt_buffer = bytearray()
        self._found = asyncio.Event()

    # the stream _Channel writes to ----------------------------------------------------------------
    async def write(self, data: bytes, deadline: float) -> None:
        self.raise_if_failed()
        try:
            async with asyncio.timeout_at(deadline):
                async with self._write_lock:
                    await self._attached.wait()
                    self.raise_if_failed()
                    assert self._writer is not None
                    self._writer.write(data)
                    await self._writer.drain()
        except TimeoutError:
            raise AgentError("The shell's agent did not take the request in time.") from None
        except OSError as exc:
            raise AgentError(f"Lost the connection to the shell's agent: {exc}.") from None

    def write_nowait(self, data: bytes) -> None:
        if self._failure is not None:
            return
        if self._writer is not None and self._attached.is_set() and not self._write_lock.locked():
            self._writer.write(data)
        else:
            self._pending += data

    # attaching and detaching ---------------------------------------------------------------------
    async def attach(
        self,
        socket_path: str,
        timeout_s: float,
        *,
        resync: bool,
        extra: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        """Connect to a (new) QEMU's agent socket; with ``resync`` start a fresh stream (see above),
        the request carrying what ``extra`` returns (called anew for each try)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self._close_socket()
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_unix_connection(socket_path)
        except (OSError, TimeoutError) as exc:
            raise AgentError(f"Cannot reach the shell's agent: {exc}.") from None
        self._writer = writer
        if resync:
            self._decoder = FrameDecoder()
            self.wake_all()
            self._channels.clear()
            self._pending.clear()
        self._reader_task = loop.create_task(self._read(reader))
        if resync:
            await self._resync(writer, deadline, extra or dict)
        if self._pending:
            writer.write(bytes(self._pending))
            self._pending.clear()
        self._attached.set()

    async def _resync(
        self, writer: asyncio.StreamWriter, deadline: float, extra: Callable[[], dict[str, object]]
    ) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(RESYNC_TRIES):
            token = secrets.token_hex(12)
            channel_id = MAX_CHANNEL - attempt  # never used by open_channel before it wraps
            self._found.clear()
            self._hunt_buffer.clear()
            self._hunt = encode_control(channel_id, {"op": "ok", "token": token})
            writer.write(encode_control(channel_id, {**extra(), "op": "resync", "token": token}))
            try:
                await writer.drain()
                wait = min(deadline, loop.time() + 2.0 * (attempt + 1))
                async with asyncio.timeout_at(wait):
                    await self._found.wait()
                return
            except TimeoutError:
                continue
            except OSError as exc:
                raise AgentError(f"Lost the connection to the shell's agent: {exc}.") from None
        raise AgentError("The shell's agent did not answer a resync.")

    async def quiesce(self) -> None:
        """Stop writing and wait until QEMU read every byte already sent; call ``release`` after."""
        await self._write_lock.acquire()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DRAIN_TIMEOUT_S
        while self._writer is not None and _unsent_bytes(self._writer) > 0 and loop.time() < give_up:
            await asyncio.sleep(0.001)

    def release(self) -> None:
        if self._write_lock.locked():
            self._write_lock.release()

    async def detach(self) -> None:
        """The QEMU behind the socket is gone: read what it left, keep every channel waiting."""
        self._attached.clear()
        if self._reader_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._reader_task), 1.0)
        await self._close_socket()

    def fail(self, reason: str) -> None:
        """The VM is gone for good: every waiting call fails with ``reason``."""
        self._attached.set()  # writers waiting for an attach wake up and raise
        super().fail(reason)

    async def aclose(self) -> None:
        self.fail("The shell's VM is no longer running.")
        await self._close_socket()
        self.release()

    async def _close_socket(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                if self._hunt is not None:
                    data = self._hunted(data)
                    if not data:
                        continue
                for frame in self._decoder.feed(data):
                    await self.route(frame)
        except ProtocolError as exc:
            self.fail(f"The shell's agent broke the protocol: {exc}.")
        except OSError:
            pass
        self._attached.clear()

    def _hunted(self, data: bytes) -> bytes:
        """Skip bytes until the resync reply; return what follows it."""
        assert self._hunt is not None
        self._hunt_buffer += data
        at = self._hunt_buffer.find(self._hunt)
        if at < 0:
            keep = len(self._hunt) - 1
            del self._hunt_buffer[: max(0, len(self._hunt_buffer) - keep)]
            return b""
        rest = bytes(self._hunt_buffer[at + len(self._hunt) :])
        self._hunt = None
        self._hunt_buffer.clear()
        self._decoder = FrameDecoder()
        self._found.set()
        return rest


class LinkedAgentClient(AgentClient):
    """The agent client of a microvm: every call is a channel on the VM's one ``AgentLink``."""

    def __init__(self, link: AgentLink, op_timeout_s: float = DEFAULT_OP_TIMEOUT_S) -> None:
        super().__init__("", op_timeout_s)
        self._link = link

    @contextlib.asynccontextmanager
    async def _channel(self, deadline: float) -> AsyncIterator[_Channel]:
        channel = self._link.open_channel()
        try:
            yield channel
        finally:
            channel.close()

    async def sync(self) -> None:
        await self._call({"op": "sync", **sync_fields()})
