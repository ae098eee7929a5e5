"""Metrics over time: every shell's CPU, memory and disk, read on the host every few seconds into a
bounded ring per shell (``domain.samples``), and read back by a time range.

The readings come from the host (cgroups, the QEMU process, quota groups, disk files) through
``Backend.usage``, never from the agent inside the shell, so a shell cannot make its numbers up. The
rings are in memory: they live as long as the shell, and a server restart starts them again.
"""

from __future__ import annotations

import time

import anyio

from ..domain import access
from ..domain.principal import Principal
from ..domain.samples import ResourceUsage, Sample, SampleRing
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .auth import authorize
from .context import ControlContext
from .periodic import Periodic

SAMPLED = (ShellState.RUNNING, ShellState.PAUSED)
"""States worth a reading: a stopped shell's numbers do not move."""


class ShellSamples:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.interval_s = ctx.settings.metrics_sample_s
        self._rings: dict[str, SampleRing] = {}
        self._sampler = Periodic("the metrics sampler", self.interval_s, self.sample)

    def start(self) -> None:
        self._sampler.start()

    async def stop(self) -> None:
        await self._sampler.stop()

    async def sample(self) -> int:
        """Read every running or paused shell once; rings of shells that are gone are dropped.
        Returns how many shells were read."""
        shells = [s for s in self.ctx.store.list_shells(None) if s.state in SAMPLED]
        readings = await anyio.to_thread.run_sync(self._read, shells)
        live = {s.id for s in shells}
        for gone in [k for k in self._rings if k not in live and self._deleted(k)]:
            del self._rings[gone]
        for shell_id, at, usage in readings:
            self._rings.setdefault(shell_id, SampleRing()).add(at, usage)
        return len(readings)

    def _read(self, shells: list[ShellRecord]) -> list[tuple[str, float, ResourceUsage]]:
        out = []
        for shell in shells:
            backend = self.ctx.backends.get(shell.runtime)
            if backend is not None:
                out.append((shell.id, time.time(), backend.usage(shell.id)))
        return out

    def _deleted(self, shell_id: str) -> bool:
        shell = self.ctx.store.get_shell(shell_id)
        return shell is None or shell.state in (ShellState.DELETED, ShellState.LOST)

    def series(
        self, principal: Principal, shell_id: str, start: float | None, end: float | None
    ) -> list[Sample]:
        """The shell's samples from ``start`` to ``end`` (Unix seconds, both optional), oldest first."""
        shell = authorize(self.ctx.store, principal, shell_id, access.READ)
        ring = self._rings.get(shell.id)
        return [] if ring is None else ring.between(start, end)
