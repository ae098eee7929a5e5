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

The guest's root can write into the port too, and read from it. What it writes cannot reach a call:
frames are taken only for channels the host opened, under ids it cannot guess (``framescan.py``).
What it reads is lost to the agent, whose decoder then loses its step and hunts for the next resync
mark (``guest/protocol.py``). So a call that fails with ``AgentError`` makes the link check itself:
if a ping on a fresh channel does not come back within ``PING_TIMEOUT_S`` the stream is restarted in
place with a resync that reaches an agent out of step (open calls end with an error saying so). If
the agent does not answer that either, the link keeps waiting for the answer, every call still ends
at its deadline, and the next failed call checks again. No check runs before the agent was first
heard (a booting VM) or while the host itself holds the stream back (a consumer that does not read).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import struct
import time
from collections.abc import AsyncIterator, Callable

from ...domain.errors import AgentError
from ...guest.protocol import HEADER_SIZE, MAX_PAYLOAD, RESYNC_MARK, encode_control, new_channel_id
from ..agent_client import DEFAULT_OP_TIMEOUT_S, AgentClient, ChannelTable, _Channel
from .framescan import FrameScanner

log = logging.getLogger(__name__)

SIOCOUTQ = 0x5411
READ_SIZE = 256 * 1024
DRAIN_TIMEOUT_S = 2.0
RESYNC_WAIT_S = 2.0
"""How long the first resync request is given; each later one one more such step, up to three (a
busy guest under TCG may take seconds), until the caller's deadline."""
SEED_BYTES = 64
PING_TIMEOUT_S = 10.0
"""How long a link that just failed a call gets to answer a ping before its stream is restarted."""
RECOVER_TIMEOUT_S = 30.0
RECONNECT_AFTER_S = 8.0
"""How long resync requests go unanswered on one connection before the link connects anew."""
FILLER_BYTES = MAX_PAYLOAD + HEADER_SIZE
"""Zeros sent before the mark when the agent may be out of step: they complete whatever frame its
decoder thinks it is in, after which they are a framing fault and it hunts for the mark."""


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
        self._decoder = FrameScanner(self._channels)
        self._writer: asyncio.StreamWriter | None = None
        self._checking: asyncio.Task[None] | None = None
        self._heard = False
        """Whether a frame arrived since the last attach: no check before the agent was ever heard."""
        self._routing = False
        """Whether the reader waits for a channel's full inbox (the host holds the stream back)."""
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
        writer = await self._connect(socket_path, deadline, resync=resync)
        while resync:
            try:
                await self._resync(writer, min(deadline, loop.time() + RECONNECT_AFTER_S), extra or dict)
                break
            except AgentError:
                if loop.time() >= deadline:
                    raise
            # Unanswered on this connection: a new one makes QEMU tell the guest a host came (a guest
            # restored just before a server crash was seen to miss that until the next connection).
            log.info("no resync answer from the agent at %s; connecting anew", socket_path)
            writer = await self._connect(socket_path, deadline, resync=resync)
        if self._pending:
            writer.write(bytes(self._pending))
            self._pending.clear()
        self._attached.set()

    async def _connect(self, socket_path: str, deadline: float, *, resync: bool) -> asyncio.StreamWriter:
        """A new connection to the VM's agent socket (the old one closed), read by a new task; with
        ``resync`` the stream starts over (its calls end)."""
        await self._close_socket()
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_unix_connection(socket_path)
        except (OSError, TimeoutError) as exc:
            raise AgentError(f"Cannot reach the shell's agent: {exc}.") from None
        self._writer = writer
        self._heard = self._routing = False
        if resync:
            self._restart_stream("The shell's VM was restored; calls made before ended.")
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))
        return writer

    def _restart_stream(self, reason: str) -> None:
        self._decoder = FrameScanner(self._channels)
        self.drop_all(reason)
        self._pending.clear()

    async def _resync(
        self,
        writer: asyncio.StreamWriter,
        deadline: float,
        extra: Callable[[], dict[str, object]],
        *,
        lost_step: bool = False,
    ) -> None:
        """Send resync requests until one is answered or ``deadline`` passes. Each comes after the
        mark, and after the filler too once the agent may have lost its step (``lost_step``, or an
        unanswered try)."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while loop.time() < deadline:
            token = secrets.token_hex(12)
            channel_id = new_channel_id()
            self._found.clear()
            self._hunt_buffer.clear()
            self._hunt = encode_control(channel_id, {"op": "ok", "token": token})
            if lost_step or attempt:
                writer.write(bytes(FILLER_BYTES))
            writer.write(
                RESYNC_MARK + encode_control(channel_id, {**extra(), "op": "resync", "token": token})
            )
            attempt += 1
            try:
                await writer.drain()
                wait = min(deadline, loop.time() + RESYNC_WAIT_S * min(attempt, 3))
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
        if self._checking is not None:
            self._checking.cancel()
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
        with contextlib.suppress(OSError):
            while data := await reader.read(READ_SIZE):
                if self._hunt is not None:
                    data = self._hunted(data)
                    if not data:
                        continue
                for frame in self._decoder.feed(data):
                    self._heard = self._routing = True
                    await self.route(frame)
                    self._routing = False
        self._attached.clear()

    # keeping the link alive -------------------------------------------------------------------------
    def check_soon(self) -> None:
        """A call failed: make sure the agent still answers (one check at a time)."""
        idle = self._checking is None or self._checking.done()
        if self._failure is None and self._heard and idle:
            self._checking = asyncio.get_running_loop().create_task(self._check())

    def _checkable(self) -> bool:
        attached = self._writer is not None and self._attached.is_set()
        return self._failure is None and attached and not self._routing

    async def _check(self) -> None:
        if not self._checkable():
            return  # gone, between QEMU processes, or held back by us: not a wedge
        try:
            await LinkedAgentClient(self, check=False).ping(PING_TIMEOUT_S)
            return
        except AgentError:
            pass
        writer = self._writer
        if writer is None or not self._checkable():
            return
        log.warning("a VM's agent link stopped answering (%d bytes skipped); restarting its stream",
                    self._decoder.skipped)  # fmt: skip
        self._attached.clear()  # new writes wait for the new stream
        self._restart_stream("The link to the shell's agent stopped answering and was reset; the call ended.")
        loop = asyncio.get_running_loop()
        try:
            await self._resync(writer, loop.time() + RECOVER_TIMEOUT_S, sync_fields, lost_step=True)
        except AgentError as exc:
            log.warning("a VM's agent did not answer the resync yet (%s); the link waits for it", exc)
        finally:
            if self._writer is writer:  # not detached meanwhile (a pause): writes may go on
                self._attached.set()

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
        self._decoder = FrameScanner(self._channels)
        self._found.set()
        return rest


class LinkedAgentClient(AgentClient):
    """The agent client of a microvm: every call is a channel on the VM's one ``AgentLink``."""

    def __init__(
        self, link: AgentLink, op_timeout_s: float = DEFAULT_OP_TIMEOUT_S, *, check: bool = True
    ) -> None:
        super().__init__("", op_timeout_s)
        self._link = link
        self._check = check

    @contextlib.asynccontextmanager
    async def _channel(self, deadline: float) -> AsyncIterator[_Channel]:
        channel = self._link.open_channel()
        try:
            yield channel
        except AgentError:
            if self._check:
                self._link.check_soon()
            raise
        finally:
            channel.close()

    async def sync(self) -> None:
        await self._call({"op": "sync", **sync_fields()})
