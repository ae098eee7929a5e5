"""What the agent does only inside a microvm: serve one virtio-serial port that outlives the host's
connections, and the ops a host needs after restoring or forking a VM (``sync``, ``resync``).

The port is not a socket. When the host goes (its QEMU is paused and exits, the server restarts) the
guest sees ``read() == 0`` and then, until a host is attached again, ``poll()`` reports ``IN|HUP`` at
once, so the fd cannot stay in the selector (it would spin). Instead the port is taken out of the loop
and checked on a timer with backoff. Channels stay open meanwhile and their output queues (producers
pause at the high-water mark), so a command still running when the VM was paused keeps streaming to
the next host that attaches: host and guest treat the port as one byte stream across visits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import time
from pathlib import Path

from .loop import Agent, Connection, RequestError, log
from .protocol import (
    HEADER_SIZE,
    FrameDecoder,
    FrameKind,
    encode_frame,
    frame_parts,
    get_bool,
    get_int,
    get_str,
)

RECHECK_FIRST_S = 0.002
RECHECK_MAX_S = 0.1
RNDADDENTROPY = 0x40085203  # _IOW('R', 0x03, int[2])
RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07)
MAX_SEED_BYTES = 512
ATOMIC_WRITE = 32 * 1024
"""The most one ``write()`` to a virtio port moves as one buffer (virtio_console's limit). The guest's
root can write to the port too (it can copy the agent's fd), so the agent writes whole frames of at
most this size per call: another writer's bytes then fall between frames, never inside one, and the
host, which drops what is not a frame of a channel it opened, reads every frame of ours intact."""
_SPLITTABLE = frozenset({FrameKind.STDOUT, FrameKind.STDERR, FrameKind.DATA})


def atomic_frames(frame: bytes) -> list[bytes]:
    """``frame`` as frames of at most ATOMIC_WRITE bytes: output and file data split into several
    frames of the same channel and kind (the host concatenates them); a larger CONTROL frame cannot
    be split and stays whole (another writer may cut into it: the host then fails that one call)."""
    channel, kind, size = frame_parts(frame)
    if size <= ATOMIC_WRITE or kind not in _SPLITTABLE:
        return [frame]
    payload = memoryview(frame)[HEADER_SIZE:]
    step = ATOMIC_WRITE - HEADER_SIZE
    return [
        encode_frame(channel, FrameKind(kind), bytes(payload[i : i + step]))
        for i in range(0, len(payload), step)
    ]


def host_attached(fd: int) -> bool:
    """Whether a host has the other end of the port open (virtio_console reports POLLHUP otherwise)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLOUT)
    return not any(events & select.POLLHUP for _, events in poller.poll(0))


class SerialConnection(Connection):
    """The port: never closed; a hang-up detaches it until a host attaches again."""

    def __init__(self, agent: Agent, fd: int) -> None:
        self.attached = False
        self._recheck_s = RECHECK_FIRST_S
        self._head_left = 0
        """Bytes of a frame cut by a short write still at the head of the queue (0: at a boundary)."""
        super().__init__(agent, fd, "serial port")
        self._decoder = FrameDecoder(hunt_resync=True)
        agent.later(0, self._check_attached)

    def send(self, data: bytes) -> None:
        for frame in atomic_frames(data):
            super().send(frame)

    def _write_some(self, data: bytes | bytearray) -> int:
        """Whole frames only, at most ATOMIC_WRITE bytes of them (a larger frame alone)."""
        end = self._head_left
        if not end:
            while end < len(data):
                size = frame_parts(data, end)[2]
                if end and end + size > ATOMIC_WRITE:
                    break
                end += size
        written = os.write(self.fd, memoryview(data)[:end])
        if self._head_left:
            self._head_left -= written
        else:
            boundary = 0
            while boundary < written:
                boundary += frame_parts(data, boundary)[2]
            self._head_left = boundary - written
        return written

    def _update_interest(self) -> None:
        if self.attached:
            super()._update_interest()
        else:
            self.agent.set_interest(self.fd, 0)

    def _check_attached(self) -> None:
        if host_attached(self.fd):
            self.attached = True
            self._recheck_s = RECHECK_FIRST_S
            self._update_interest()  # and flush what queued meanwhile
            return
        self.agent.later(self._recheck_s, self._check_attached)
        self._recheck_s = min(self._recheck_s * 2, RECHECK_MAX_S)

    def on_hangup(self) -> None:
        if self.attached:
            self.attached = False
            self._update_interest()
            self.agent.later(0, self._check_attached)

    def on_protocol_error(self, error: str) -> None:
        """A host that broke the framing (it died mid-frame) loses its channels, not the port."""
        log(f"{self.name}: {error}; dropping its channels")
        self.reset()

    def close(self, error: str | None) -> None:
        if error:
            log(f"{self.name}: {error}")
        self._broken = False
        self.on_hangup()

    def reset(self, *, keep_processes: bool = False) -> None:
        """Abandon every channel and queued byte; the next frame starts a fresh stream. With
        ``keep_processes`` the processes of exec channels are orphaned instead of killed."""
        for channel in list(self.channels.values()):
            if keep_processes:
                channel.orphan()
            else:
                channel.abandon()
        self.channels.clear()
        self._read_blockers.clear()
        self._decoder = FrameDecoder(hunt_resync=True)
        self._out.clear()
        self._head_left = 0
        self.congested = False
        self._update_interest()


def op_resync(connection: Connection, message: dict[str, object]) -> dict[str, object]:
    """A host that does not know this stream's past (a fork's, or one after a server restart) starts
    over: every older channel is abandoned and the reply echoes ``token``, which the host looks for
    in the bytes it receives to find where the new stream begins. With ``keep_processes`` (a fork,
    a shell made from a snapshot: the commands running then are part of the machine) processes
    run on unheard instead of being killed. With ``time_ns`` and ``seed`` it is a ``sync`` too (a
    restored guest then needs one round trip, not two); if that fails, the reply is an error,
    which the host does not take for the token."""
    token = get_str(message, "token")
    if not isinstance(connection, SerialConnection):
        raise RequestError("invalid_request", "resync is only for the serial port of a microvm.")
    connection.reset(keep_processes=get_bool(message, "keep_processes", False))
    if "time_ns" in message:
        op_sync(message)
    return {"token": token}


def op_sync(message: dict[str, object]) -> dict[str, object]:
    """Set the clock and mix fresh host randomness into the kernel's generator, then reseed it: after
    a restore the clock stood still and every fork of one snapshot would share the same RNG state."""
    time_ns = get_int(message, "time_ns")
    try:
        seed = bytes.fromhex(get_str(message, "seed"))
    except ValueError:
        raise RequestError("invalid_request", "'seed' must be hex.") from None
    if not 0 < len(seed) <= MAX_SEED_BYTES:
        raise RequestError("invalid_request", f"'seed' must hold 1 to {MAX_SEED_BYTES} bytes.")
    try:
        time.clock_settime_ns(time.CLOCK_REALTIME, time_ns)
        fd = os.open("/dev/urandom", os.O_WRONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
            fcntl.ioctl(fd, RNDRESEEDCRNG)
        finally:
            os.close(fd)
    except OSError as exc:
        raise RequestError("permission_denied", f"Cannot set the clock or seed the RNG: {exc}.") from None
    return {}


def serve_serial(agent: Agent, device: str) -> None:
    """Serve the port ``device`` with ``agent`` (whose op table has ``resync`` and ``sync``)."""
    with contextlib.suppress(OSError):  # the guest's OOM killer must pick the bomb, never the agent
        Path("/proc/self/oom_score_adj").write_text("-1000")
    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    SerialConnection(agent, fd)
    print(f"shells-agent ready on {device}", flush=True)
    agent.run()
