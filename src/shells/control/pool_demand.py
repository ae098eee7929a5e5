"""How many pre-started shells the warm pool keeps, and how many it starts at once: both follow
the recent create rate, bounded by memory.

A fixed pool of two served one create at a time; an agent creating shells in a loop, or twenty at
once, emptied it and every miss paid a cold start. Here every poolable create (claimed or missed)
is counted, and the pool keeps enough shells for ``HORIZON_S`` of the rate seen over the last
``WINDOW_S``, never fewer than its floor (``warm_pool_size``) nor more than the memory bound. When
demand stops, the counted creates age out and the target falls back to the floor.
"""

from __future__ import annotations

import math
from collections import deque

from ..domain.limits import IDLE_SHELL_BYTES, WARM_POOL_MAX, WARM_POOL_MEMORY_SHARE

WINDOW_S = 30.0
"""How far back creates count towards the rate."""
HORIZON_S = 5.0
"""The pool holds this many seconds of the recent create rate."""
MAX_PARALLEL_STARTS = 4
"""Most shells the pool starts at once (a 2-core host gains nothing past that, and claimers' first
execs would queue behind them)."""
STARTS_PER_RATE = 0.2
"""Starts at once per create per second of demand: at 5 creates/s one more start in parallel."""


class PoolDemand:
    def __init__(self, floor: int, *, available_bytes: int, shell_bytes: int = IDLE_SHELL_BYTES) -> None:
        """``shell_bytes``: what one pooled shell is counted to hold against the memory bound."""
        self.floor = max(0, floor)
        by_memory = int(available_bytes * WARM_POOL_MEMORY_SHARE) // shell_bytes
        self.ceiling = max(self.floor, min(WARM_POOL_MAX, by_memory))
        self._creates: deque[float] = deque()

    def note_create(self, now: float) -> None:
        """A create the pool could have served (claimed or missed)."""
        self._creates.append(now)
        self._forget(now)

    def rate(self, now: float) -> float:
        """Poolable creates per second over the last ``WINDOW_S``."""
        self._forget(now)
        return len(self._creates) / WINDOW_S

    def target(self, now: float) -> int:
        if self.floor == 0:
            return 0
        wanted = math.ceil(self.rate(now) * HORIZON_S)
        return max(self.floor, min(self.ceiling, wanted))

    def parallel_starts(self, now: float) -> int:
        return max(1, min(MAX_PARALLEL_STARTS, 1 + int(self.rate(now) * STARTS_PER_RATE)))

    def _forget(self, now: float) -> None:
        while self._creates and self._creates[0] < now - WINDOW_S:
            self._creates.popleft()


def available_memory_bytes() -> int:
    """The host's MemAvailable (0 when /proc/meminfo says nothing of it)."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0
