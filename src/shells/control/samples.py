"""Metrics over time: every shell's CPU, memory and disk, read on the host every few seconds into a
bounded ring per shell (``domain.samples``), and read back by a time range.

The readings come from the host (cgroups, the QEMU process, quota groups, disk files) through
``Backend.usage``, never from the agent inside the shell, so a shell cannot make its numbers up. The
rings are in memory, written to ``data_dir/metrics`` every few minutes and when the server stops,
and read back at start-up: they live as long as the shell, across restarts (a crash loses at most
the minutes since the last write).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import anyio

from ..domain import access
from ..domain.principal import Principal
from ..domain.samples import ResourceUsage, Sample, SampleRing
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .auth import authorize
from .context import ControlContext

log = logging.getLogger(__name__)

SAMPLED = (ShellState.RUNNING, ShellState.PAUSED)
"""States worth a reading: a stopped shell's numbers do not move."""
SAVE_EVERY_S = 300.0
"""How often the rings are written to disk besides at shutdown."""


class ShellSamples:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.interval_s = ctx.settings.metrics_sample_s
        self._rings: dict[str, SampleRing] = {}
        self._dir = ctx.settings.data_dir / "metrics"
        self._saved_at = time.monotonic()

    def start(self) -> None:
        self._load()
        self.ctx.background.every("the metrics sampler", self.interval_s, self.sample)

    def close(self) -> None:
        """Keep the rings for the next start (after the background loops have stopped)."""
        self._save()

    def _file(self, shell_id: str) -> Path:
        return self._dir / f"{shell_id}.samples"

    def _load(self) -> None:
        """Read back the rings of shells that still exist; forget the files of the others."""
        if not self._dir.is_dir():
            return
        for path in self._dir.glob("*.samples"):
            if self._deleted(path.stem):
                path.unlink(missing_ok=True)
                continue
            try:
                self._rings[path.stem] = SampleRing.from_bytes(path.read_bytes())
            except OSError as exc:
                log.warning("could not read the samples of %s: %s", path.stem, exc)

    def _save(self) -> None:
        """Write every ring (each file replaced whole by a rename); a failure costs only history."""
        self._saved_at = time.monotonic()
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            for shell_id, ring in list(self._rings.items()):
                tmp = self._file(shell_id).with_suffix(".tmp")
                tmp.write_bytes(ring.to_bytes())
                tmp.replace(self._file(shell_id))
        except OSError as exc:
            log.warning("could not write the metrics samples: %s", exc)

    async def sample(self) -> int:
        """Read every running or paused shell once; rings of shells that are gone are dropped.
        Returns how many shells were read."""
        shells = [s for s in self.ctx.store.list_shells(None) if s.state in SAMPLED]
        readings = await anyio.to_thread.run_sync(self._read, shells)
        live = {s.id for s in shells}
        for gone in [k for k in self._rings if k not in live and self._deleted(k)]:
            del self._rings[gone]
            with contextlib.suppress(OSError):
                self._file(gone).unlink(missing_ok=True)
        for shell_id, at, usage in readings:
            self._rings.setdefault(shell_id, SampleRing()).add(at, usage)
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            await anyio.to_thread.run_sync(self._save)
        return len(readings)

    def _read(self, shells: list[ShellRecord]) -> list[tuple[str, float, ResourceUsage]]:
        out = []
        for shell in shells:
            backend = self.ctx.backends.get(shell.runtime)
            try:
                if backend is not None:
                    out.append((shell.id, time.time(), backend.usage(shell.id)))
            except Exception:  # one shell mid-transition must not cost every other shell its sample
                log.debug("reading the usage of %s failed", shell.id, exc_info=True)
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
