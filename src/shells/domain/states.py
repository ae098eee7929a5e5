"""The shell state machine. Transitions are the only way a shell's state changes.

creating ──> running ⇄ stopped
    │          │  ⇅        │
    │          │ paused    │
    └──> failed ◄──┘       │
any live state ──> deleted (terminal)
running/paused/stopped ──> lost (the host no longer has it; found by reconciliation)
lost ──> paused/stopped (started again on another node from its state in the object store)
"""

from __future__ import annotations

from enum import StrEnum

from .errors import InvalidState


class ShellState(StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"
    LOST = "lost"
    DELETED = "deleted"


_ALLOWED: dict[ShellState, frozenset[ShellState]] = {
    ShellState.CREATING: frozenset({ShellState.RUNNING, ShellState.FAILED, ShellState.DELETED}),
    ShellState.RUNNING: frozenset(
        {ShellState.STOPPED, ShellState.PAUSED, ShellState.FAILED, ShellState.LOST, ShellState.DELETED}
    ),
    ShellState.PAUSED: frozenset(
        {ShellState.RUNNING, ShellState.STOPPED, ShellState.LOST, ShellState.DELETED}
    ),
    ShellState.STOPPED: frozenset(
        {ShellState.RUNNING, ShellState.FAILED, ShellState.LOST, ShellState.DELETED}
    ),
    ShellState.FAILED: frozenset({ShellState.RUNNING, ShellState.STOPPED, ShellState.DELETED}),
    ShellState.LOST: frozenset({ShellState.PAUSED, ShellState.STOPPED, ShellState.DELETED}),
    ShellState.DELETED: frozenset(),
}


def can_transition(current: ShellState, target: ShellState) -> bool:
    return target in _ALLOWED[current]


def transition(current: ShellState, target: ShellState) -> ShellState:
    """Return ``target`` if the machine allows ``current → target``, else raise InvalidState."""
    if not can_transition(current, target):
        raise InvalidState(
            f"A shell cannot go from '{current}' to '{target}'.",
            {"state": str(current), "target": str(target)},
        )
    return target
