"""Sandbox ids: a shell id without its ``sh_`` prefix, because E2B's SDKs put the id in host names
(``{port}-{id}.{domain}``) and split them on ``-``; an ``_`` is not valid in a host name either."""

from __future__ import annotations

from ..domain.errors import ShellNotFound
from ..domain.ids import looks_like

SHELL_PREFIX = "sh"


def sandbox_id(shell_id: str) -> str:
    return shell_id.removeprefix(SHELL_PREFIX + "_")


def shell_id(sandbox: str) -> str:
    """The shell a sandbox id names; ShellNotFound (a 404, as for any unknown id) if it is not one."""
    candidate = f"{SHELL_PREFIX}_{sandbox}"
    if not looks_like(SHELL_PREFIX, candidate):
        raise ShellNotFound(f"Sandbox {sandbox[:80]!r} not found.", {"sandbox_id": sandbox[:80]})
    return candidate
