"""An interactive process on a pseudo-terminal inside a shell: what to start and how to talk to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .errors import InvalidRequest
from .execution import ExecExit

MAX_WINDOW = 4096
LOGIN_SHELL: tuple[str, ...] = ("/bin/sh", "-c", "command -v bash >/dev/null && exec bash -l; exec sh -l")
"""bash when the template has it, else sh; both as login shells."""


def check_window(cols: object, rows: object) -> tuple[int, int]:
    for name, value in (("cols", cols), ("rows", rows)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW:
            raise InvalidRequest(f"'{name}' must be a whole number from 1 to {MAX_WINDOW}.", {"field": name})
    assert isinstance(cols, int) and isinstance(rows, int)
    return cols, rows


@dataclass(frozen=True)
class TerminalSpec:
    argv: tuple[str, ...] = LOGIN_SHELL
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/workspace"
    cols: int = 80
    rows: int = 24
    timeout_s: float = 3600.0
    """A backstop enforced inside the shell; the control layer ends sessions long before."""
    user: str | None = None
    """Who runs the terminal (an image template's ``User``); None is the shell's root."""

    def __post_init__(self) -> None:
        check_window(self.cols, self.rows)


class TerminalIO(Protocol):
    """An open terminal. ``read`` returns output bytes until the process ends, then its ExecExit."""

    async def read(self) -> bytes | ExecExit: ...

    async def write(self, data: bytes) -> None: ...

    async def resize(self, cols: int, rows: int) -> None: ...
