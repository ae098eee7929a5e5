"""Metrics over time: what a backend reads of one shell (``ResourceUsage``), the points kept
(``Sample``), and the bounded ring per shell that holds them. Rules only, no I/O."""

from __future__ import annotations

import math
from array import array
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

    def to_bytes(self) -> bytes:
        """The samples as packed doubles (at, cpu, memory, disk; NaN for None), to outlive a restart."""
        flat = array("d")
        for x in self.samples:
            flat.extend(
                [
                    x.at,
                    *(
                        math.nan if v is None else float(v)
                        for v in (x.cpu_percent, x.memory_bytes, x.disk_bytes)
                    ),
                ]
            )
        return flat.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, size: int = MAX_SAMPLES_PER_SHELL) -> SampleRing:
        """The ring ``to_bytes`` wrote; trailing bytes that do not make a whole sample are ignored."""
        flat = array("d")
        flat.frombytes(data[: len(data) - len(data) % (4 * flat.itemsize)])
        ring = cls(size)
        for i in range(0, len(flat), 4):
            at, cpu, memory, disk = flat[i : i + 4]
            ring.samples.append(Sample(at, _opt(cpu), _opt_int(memory), _opt_int(disk)))
        return ring


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else value


def _opt_int(value: float) -> int | None:
    return None if math.isnan(value) else int(value)
