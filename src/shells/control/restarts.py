"""Shells whose restart runs now. A request that needs a shell's processes waits for its restart to
end (as one waits for a paused shell to resume) instead of reaching processes being replaced, which
answered 502; a restart that outlasts RESTART_WAIT_S answers 409 ``shell_busy``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from ..domain.errors import ShellBusy
from ..domain.limits import RESTART_WAIT_S


class Restarts:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Event] = {}

    @contextmanager
    def running(self, shell_id: str) -> Iterator[None]:
        """Mark ``shell_id`` restarting for the duration of the block."""
        done = asyncio.Event()
        self._running[shell_id] = done
        try:
            yield
        finally:
            del self._running[shell_id]
            done.set()

    async def wait(self, shell_id: str, timeout_s: float = RESTART_WAIT_S) -> bool:
        """False at once unless ``shell_id`` is restarting; else True once the restart has ended."""
        done = self._running.get(shell_id)
        if done is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await done.wait()
        except TimeoutError:
            raise ShellBusy(
                f"The shell is still restarting after {timeout_s:.0f} s; try again shortly.",
                {"retry_after_s": 1},
            ) from None
        return True
