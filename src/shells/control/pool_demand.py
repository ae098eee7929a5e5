"""How many pre-started shells the warm pool keeps, and how many it starts at once: both follow
the recent create rate, bounded by memory.

A fixed pool of two served one create at a time; an agent creating shells in a loop, or twenty at
once, emptied it and every miss paid a cold start. Here every poolable create (claimed or missed)
is counted, and the pool keeps enough shells for ``HORIZON_S`` of the rate seen over the last
``WINDOW_S``, never fewer than its floor (``warm_pool_size``) nor more than the memory bound. When
demand stops, the counted creates age out and the target falls back to the floor.

The memory bound is re-read each time the pool looks at its target: the operator's budget
(``SHELLS_WARM_POOL_MEMORY_MIB``) or, without one, ``WARM_POOL_MEMORY_SHARE`` of the host's memory
available now, and never more than half of that, so a host short of memory stops growing its pool
whatever the budget says.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

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
    def __init__(
        self,
        floor: int,
        *,
        budget_bytes: int = 0,
        available_bytes: Callable[[], int] | None = None,
        shell_bytes: int = IDLE_SHELL_BYTES,
    ) -> None:
        """``budget_bytes`` 0: ``WARM_POOL_MEMORY_SHARE`` of ``available_bytes()`` (the host's
        MemAvailable unless given); ``shell_bytes``: what one pooled shell is counted to hold against
        that bound."""
        self.floor = max(0, floor)
        self.budget_bytes = max(0, budget_bytes)
        self.shell_bytes = shell_bytes
        self._available = available_bytes or available_memory_bytes
        self._creates: deque[float] = deque()

    def ceiling(self) -> int:
        """Most shells the pool may hold now: the memory bound, never under the floor."""
        available = self._available()
        if self.budget_bytes:
            budget = min(self.budget_bytes, available // 2)
        else:
            budget = int(available * WARM_POOL_MEMORY_SHARE)
        return max(self.floor, min(WARM_POOL_MAX, budget // self.shell_bytes))

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
        if wanted <= self.floor:
            return self.floor
        return min(self.ceiling(), wanted)

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
