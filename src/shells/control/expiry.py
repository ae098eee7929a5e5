"""The hard time-to-live of shells (``timeout_s`` at create, ``set_timeout`` after): once a shell's
``expires_at`` passes it is deleted (``on_timeout: kill``) or paused (``pause``; stopped keeping its
files where the class cannot pause), whatever it is doing. Unlike the idle monitor it reads only the
record, so it holds across server restarts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ..domain.errors import ShellsError
from ..domain.states import ShellState
from .context import ControlContext
from .lifecycle import Lifecycle
from .suspend import Suspension

log = logging.getLogger(__name__)
EXPIRY_SWEEP_S = 1.0
LIVE = (ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED, ShellState.FAILED)


class Expiry:
    def __init__(self, ctx: ControlContext, shells: Lifecycle, suspension: Suspension) -> None:
        self.ctx = ctx
        self.shells = shells
        self.suspension = suspension

    def start(self) -> None:
        self.ctx.background.every("the time-to-live sweep", EXPIRY_SWEEP_S, self.sweep, singleton=True)

    async def sweep(self) -> list[str]:
        """End every shell past its time-to-live; returns their ids."""
        now = datetime.now(UTC)
        ended: list[str] = []
        for shell in self.ctx.store.list_shells(None):
            if shell.expires_at is None or shell.expires_at > now or shell.state not in LIVE:
                continue
            reason = f"its time-to-live ended at {shell.expires_at.isoformat()}"
            try:
                if shell.on_timeout == "pause":
                    if shell.state is ShellState.RUNNING:
                        await self.suspension.halt(shell.id, reason, "timeout")
                        ended.append(shell.id)
                    continue
                draft = self.ctx.draft(
                    None, shell, door="system", kind="delete", action="timeout", message=reason
                )
                await self.shells.remove(shell, reason, draft)
                ended.append(shell.id)
            except ShellsError as exc:  # e.g. deleted meanwhile: the next pass sees the new state
                log.warning("ending shell %s at its time-to-live failed: %s", shell.id, exc.message)
        return ended
