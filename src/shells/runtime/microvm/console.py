"""A VM's serial console (``ttyS0``): what the host keeps of it is bounded, whatever the guest writes.

The guest owns its kernel and can write to ``ttyS0`` as fast as the UART goes (20 MB a minute under
TCG, far more with KVM), so QEMU never writes the console to a file. It keeps it in a ``ringbuf``
chardev of ``CONSOLE_BYTES`` in its own memory (the oldest bytes are overwritten), and the host moves
what the ring holds into ``console.log`` whenever it reads the logs or stops the VM's QEMU on purpose
(pause, snapshot, fork, stop). ``console.log`` then keeps only its last ``CONSOLE_BYTES``, so a shell's
console costs the host at most ``CONSOLE_BYTES`` of its QEMU's memory plus as much on disk. A QEMU
that dies unexpectedly loses what its ring held since the last move.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...domain.errors import RuntimeFailure

if TYPE_CHECKING:
    from .qemu import Qmp

CONSOLE_BYTES = 1 << 20
"""The most of a VM's console the host keeps, in QEMU's ring and in ``console.log`` each (the ring's
size must be a power of two)."""
CHARDEV = "console"
READ_CHUNK = 256 * 1024
"""Bytes per ``ringbuf-read``: its base64 answer stays well inside the QMP reader's line limit."""


def chardev_args() -> list[str]:
    """QEMU arguments: the guest's first serial port into the bounded ring."""
    return ["-chardev", f"ringbuf,id={CHARDEV},size={CONSOLE_BYTES}", "-serial", f"chardev:{CHARDEV}"]


async def move_to_log(qmp: Qmp, log: Path) -> None:
    """Empty the ring of the VM behind ``qmp`` into ``log``. QEMU serves one QMP client at a time, so
    two moves for one VM never interleave. A QEMU without the ring (started before it existed) is
    left alone."""
    taken = bytearray()
    while len(taken) < CONSOLE_BYTES:
        try:
            text = await qmp.execute("ringbuf-read", device=CHARDEV, size=READ_CHUNK, format="base64")
        except RuntimeFailure:
            return
        chunk = base64.b64decode(text) if isinstance(text, str) else b""
        if not chunk:
            break
        taken += chunk
    if taken:
        append_bounded(log, bytes(taken))


def append_bounded(log: Path, data: bytes, limit: int = CONSOLE_BYTES) -> None:
    """Append ``data`` to ``log``, which then keeps only its last ``limit`` bytes (replaced whole by a
    rename, so a reader sees the old or the new file)."""
    data = data[-limit:]
    kept = b""
    with contextlib.suppress(FileNotFoundError), log.open("rb") as f:
        keep = limit - len(data)
        if keep > 0:
            f.seek(max(0, os.fstat(f.fileno()).st_size - keep))
            kept = f.read(keep)
    partial = log.with_name(log.name + ".partial")
    partial.write_bytes(kept + data)
    partial.replace(log)
