"""envd's polling directory watchers (``CreateWatcher`` / ``GetWatcherEvents`` / ``RemoveWatcher``,
what the SDK's sync ``watch_dir`` uses): a task per watcher reads the agent's watch into a bounded
buffer that each poll empties. A watcher ends when removed, when its sandbox goes, or at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..domain.errors import NotFound, QuotaExceeded
from ..domain.execution import FileChange
from ..domain.limits import E2B_MAX_WATCHER_EVENTS, E2B_MAX_WATCHERS


@dataclass
class Watcher:
    shell_id: str
    events: deque[FileChange] = field(default_factory=lambda: deque(maxlen=E2B_MAX_WATCHER_EVENTS))
    task: asyncio.Task[None] | None = None
    ended: str | None = None
    """Why the watch ended (its sandbox went, say): the next poll reports it."""


class Watchers:
    def __init__(self) -> None:
        self._by_id: dict[str, Watcher] = {}

    def add(self, shell_id: str, changes: AsyncIterator[FileChange]) -> str:
        if sum(w.shell_id == shell_id for w in self._by_id.values()) >= E2B_MAX_WATCHERS:
            raise QuotaExceeded(
                f"A sandbox has at most {E2B_MAX_WATCHERS} watchers; remove one first.",
                {"limit": "e2b_watchers", "value": E2B_MAX_WATCHERS},
            )
        watcher_id = secrets.token_hex(8)
        watcher = Watcher(shell_id)
        watcher.task = asyncio.create_task(self._read(watcher, changes))
        self._by_id[watcher_id] = watcher
        return watcher_id

    @staticmethod
    async def _read(watcher: Watcher, changes: AsyncIterator[FileChange]) -> None:
        try:
            async for change in changes:
                watcher.events.append(change)  # past the bound, the oldest are dropped
        except Exception as exc:
            watcher.ended = str(getattr(exc, "message", exc))
        else:
            watcher.ended = "The watch ended."

    def _get(self, shell_id: str, watcher_id: str) -> Watcher:
        watcher = self._by_id.get(watcher_id)
        if watcher is None or watcher.shell_id != shell_id:
            raise NotFound(
                f"No watcher {watcher_id[:40]!r} on this sandbox.", {"watcher_id": watcher_id[:40]}
            )
        return watcher

    def take(self, shell_id: str, watcher_id: str) -> list[FileChange]:
        watcher = self._get(shell_id, watcher_id)
        events = list(watcher.events)
        watcher.events.clear()
        if not events and watcher.ended is not None:
            self._by_id.pop(watcher_id, None)
            raise NotFound(watcher.ended, {"watcher_id": watcher_id})
        return events

    async def remove(self, shell_id: str, watcher_id: str) -> None:
        watcher = self._get(shell_id, watcher_id)
        del self._by_id[watcher_id]
        await self._stop(watcher)

    @staticmethod
    async def _stop(watcher: Watcher) -> None:
        if watcher.task is not None:
            watcher.task.cancel()
            with contextlib.suppress(BaseException):
                await watcher.task

    async def close(self) -> None:
        watchers, self._by_id = list(self._by_id.values()), {}
        for watcher in watchers:
            await self._stop(watcher)
