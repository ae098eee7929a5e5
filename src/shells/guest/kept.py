"""Kept processes (an exec with ``keep``): they outlive the call that started them, are listed by
``processes`` and given a channel again by ``attach``. The process itself is an ``ExecChannel``
(``guest/execs.py``) that detaches instead of dying when its host goes."""

from __future__ import annotations

from .loop import Channel, Connection, RequestError
from .protocol import get_int

MAX_KEPT = 256
"""Kept processes (``keep``) one agent runs at once."""


def op_processes(connection: Connection, message: dict[str, object]) -> dict[str, object]:
    """The running kept processes: pid, tag, argv, cwd, pty, and whether a channel follows them."""
    return {
        "processes": [
            {"pid": pid, **channel.listing, "attached": not channel.orphaned}
            for pid, channel in connection.agent.kept.items()
            if channel.status is None
        ]
    }


def attach_channel(connection: Connection, channel_id: int, message: dict[str, object]) -> Channel:
    """Give a detached kept process this channel: ``started``, then its output from now on."""
    pid = get_int(message, "pid")
    channel = connection.agent.kept.get(pid)
    if channel is None or channel.status is not None:
        raise RequestError("process_not_found", f"No running kept process with pid {pid}.")
    if not channel.orphaned:
        raise RequestError("invalid_request", f"Process {pid} is attached to another call.")
    channel.attach(connection, channel_id)
    return channel
