"""Lifecycle capabilities (the actions API) and which states allow them."""

from __future__ import annotations

from enum import StrEnum

from .states import ShellState


class Capability(StrEnum):
    LOGS = "logs"
    RESTART = "restart"
    SNAPSHOT = "snapshot"
    STOP = "stop"
    START = "start"
    REINSTALL_OS = "reinstall_os"
    WIPE_STATE = "wipe_state"
    PAUSE = "pause"
    RESUME = "resume"
    FORK = "fork"


_RUNNING = frozenset({ShellState.RUNNING})
ALLOWED_STATES: dict[Capability, frozenset[ShellState]] = {
    Capability.LOGS: frozenset(
        {ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED, ShellState.FAILED, ShellState.LOST}
    ),
    Capability.RESTART: frozenset({ShellState.RUNNING, ShellState.FAILED}),
    Capability.SNAPSHOT: frozenset({ShellState.RUNNING, ShellState.STOPPED, ShellState.PAUSED}),
    Capability.STOP: frozenset({ShellState.RUNNING, ShellState.PAUSED, ShellState.FAILED}),
    Capability.START: frozenset({ShellState.STOPPED, ShellState.FAILED}),
    Capability.REINSTALL_OS: frozenset({ShellState.RUNNING, ShellState.STOPPED, ShellState.FAILED}),
    Capability.WIPE_STATE: frozenset({ShellState.RUNNING, ShellState.STOPPED, ShellState.FAILED}),
    Capability.PAUSE: _RUNNING,
    Capability.RESUME: frozenset({ShellState.PAUSED}),
    Capability.FORK: frozenset({ShellState.RUNNING, ShellState.PAUSED}),
}

COMMON_CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.LOGS,
        Capability.RESTART,
        Capability.SNAPSHOT,
        Capability.STOP,
        Capability.START,
        Capability.REINSTALL_OS,
        Capability.WIPE_STATE,
    }
)
"""What every isolation class can do."""

SUSPENDABLE: frozenset[Capability] = COMMON_CAPABILITIES | {
    Capability.PAUSE,
    Capability.RESUME,
    Capability.FORK,
}
"""What a class that can save a shell's whole state (pause to zero, fork) can do."""

DESTRUCTIVE: frozenset[Capability] = frozenset(
    {Capability.STOP, Capability.WIPE_STATE, Capability.REINSTALL_OS}
)
