"""Metrics over time: what a backend reads of one shell (``ResourceUsage``), the points kept
(``Sample``), and the bounded ring per shell that holds them. Rules only, no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .limits import MAX_SAMPLES_PER_SHELL


@dataclass(frozen=True)
class ResourceUsage:
    """One reading of a shell's resources on the host, whatever runs inside it."""

    cpu_s: float | None
    """CPU time used so far (cumulative seconds; the sampler turns two readings into a rate)."""
    memory_bytes: int | None
    disk_bytes: int | None


@dataclass(frozen=True)
class Sample:
    at: float
    """Unix seconds."""
    cpu_percent: float | None
    """Of one core, averaged since the previous sample (None for the first, or while not running)."""
    memory_bytes: int | None
    disk_bytes: int | None

    def to_public(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "cpu_percent": None if self.cpu_percent is None else round(self.cpu_percent, 2),
            "memory_bytes": self.memory_bytes,
            "disk_bytes": self.disk_bytes,
        }


class SampleRing:
    """The newest ``MAX_SAMPLES_PER_SHELL`` samples of one shell, and the reading the next CPU rate
    is computed from."""

    def __init__(self, size: int = MAX_SAMPLES_PER_SHELL) -> None:
        self.samples: deque[Sample] = deque(maxlen=size)
        self._last: tuple[float, float] | None = None

    def add(self, at: float, usage: ResourceUsage) -> Sample:
        cpu: float | None = None
        if usage.cpu_s is not None:
            if self._last is not None and at > self._last[0] and usage.cpu_s >= self._last[1]:
                cpu = 100.0 * (usage.cpu_s - self._last[1]) / (at - self._last[0])
            self._last = (at, usage.cpu_s)
        else:
            self._last = None  # a paused VM's next QEMU starts its count again
        sample = Sample(at, cpu, usage.memory_bytes, usage.disk_bytes)
        self.samples.append(sample)
        return sample

    def between(self, start: float | None, end: float | None) -> list[Sample]:
        return [s for s in self.samples if (start is None or s.at >= start) and (end is None or s.at <= end)]
