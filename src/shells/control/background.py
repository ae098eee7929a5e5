"""The one owner of the loops the control plane runs beside requests: the warm pool's refill, the
idle sweep, the budget check, the host's drop counters and the live feed's watcher.

Each use case says what to run (``every`` for a step each N seconds, ``run`` for a loop of its own);
``Background`` starts it on the server's event loop and ``stop`` ends them all, once, at shutdown,
so no use case keeps a task handle or a stop method of its own and none can outlive the server.

A ``singleton`` step is a duty of the whole instance that must not run twice at once (the idle
sweep, the budget check, the time-to-live sweep): with several control-plane replicas, only the one
whose ``leader()`` is true runs it (``control.leadership``: the holder of the ``shells-control``
Lease); the others keep the loop and skip the step, so the duty resumes there the moment that
replica becomes the holder. On one box ``leader()`` is always true."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


def _always() -> bool:
    return True


log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopped = False
        self.leader: Callable[[], bool] = _always
        """Whether this replica runs the singleton duties now."""

    def run(self, name: str, loop: Callable[[], Awaitable[object]]) -> None:
        """Run ``loop()`` as the task ``name``, unless a task of that name still runs (a loop that
        ended, like the feed's watcher without followers, is started again). After ``stop``,
        nothing starts."""
        running = self._tasks.get(name)
        if self._stopped or (running is not None and not running.done()):
            return

        async def body() -> None:
            try:
                await loop()
            except Exception:
                log.exception("%s failed", name)
            finally:  # a loop per shell or key (an upload, a save) must not stay listed once over
                if self._tasks.get(name) is asyncio.current_task():
                    del self._tasks[name]

        self._tasks[name] = asyncio.get_running_loop().create_task(body(), name=name)

    def every(
        self, name: str, interval_s: float, step: Callable[[], Awaitable[object]], *, singleton: bool = False
    ) -> None:
        """Run ``step`` every ``interval_s`` (a ``singleton`` one only while ``leader()``); a step that
        fails is logged and tried again the next period, so one bad pass never ends the loop."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                if singleton and not self.leader():
                    continue
                try:
                    await step()
                except Exception:
                    log.exception("%s failed; it runs again in %s s", name, interval_s)

        self.run(name, loop)

    def names(self) -> list[str]:
        """The loops running now (for tests and diagnostics)."""
        return sorted(self._tasks)

    async def stop(self) -> None:
        """Cancel every loop and wait until each has ended."""
        self._stopped = True
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
