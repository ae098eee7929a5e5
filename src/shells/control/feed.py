"""The live feed: the events of every shell a caller may see, pushed as they are written.

Every change already writes one event to the store, in the same transaction as the change, so the
feed reads the store instead of asking each use case to publish: nothing that writes an event can
forget to, whichever door it came through (REST, SDK, CLI, MCP, another browser), and what a caller
sees live is exactly what it could page through afterwards.

One watcher per server asks the store for its newest event id a few times a second, only while
someone listens, and wakes the followers when it moved. Each follower then reads its own tenant's new
events and keeps those of shells it holds a role on: the rule of listings (``auth.role_on``), applied
per shell, so that a shell's last event (its deletion) still reaches whoever could see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..domain import access
from ..domain.errors import Unauthenticated
from ..domain.principal import Principal
from ..domain.shell import EventRecord
from .auth import check_alive, require, role_on
from .context import ControlContext

POLL_S = 0.2
"""How often the watcher looks for new events while someone follows."""
PAGE = 500
HEARTBEAT_S = 15.0
"""A follower that saw nothing for this long gets a heartbeat (which also finds a closed client)."""


@dataclass(frozen=True)
class FeedItem:
    """One event and the shell it is about, as the shell is now (in its wire form)."""

    event: EventRecord
    shell: dict[str, Any]

    def to_public(self) -> dict[str, Any]:
        return {"event": self.event.to_public(), "shell": self.shell}


class Feed:
    def __init__(self, ctx: ControlContext, poll_s: float = POLL_S) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.poll_s = poll_s
        self._tick = asyncio.Event()
        self._followers = 0
        self._closed = False

    def cursor(self, principal: Principal, after: int | None) -> int:
        """Check that the caller may follow (before any answer starts) and say where it starts:
        after ``after``, or after the newest event when none is given."""
        require(principal, access.READ.scope)
        return self.store.last_event_id() if after is None else after

    async def follow(self, principal: Principal, cursor: int) -> AsyncIterator[FeedItem | None]:
        """The caller's items after ``cursor`` as they are written; ``None`` is a heartbeat. Ends when
        the server closes the feed; raises when the caller's token is revoked or expires."""
        self._followers += 1
        self.ctx.background.run("the feed watcher", self._watch)
        try:
            while not self._closed:
                tick = self._tick  # taken before reading, so a write during the read wakes us again
                items, cursor, full = self._read(principal, cursor)
                for item in items:
                    yield item
                if full:
                    continue
                try:
                    async with asyncio.timeout(HEARTBEAT_S):
                        await tick.wait()
                except TimeoutError:
                    yield None
                self._check_token(principal)
        finally:
            self._followers -= 1

    def close(self) -> None:
        """End every follower (the server is stopping: it waits for open answers to finish)."""
        self._closed = True
        self._wake()

    def _read(self, principal: Principal, cursor: int) -> tuple[list[FeedItem], int, bool]:
        events = self.store.list_events(tenant=principal.tenant, shell_id=None, after=cursor, limit=PAGE)
        visible: dict[str, dict[str, Any] | None] = {}
        items: list[FeedItem] = []
        for event in events:
            if event.shell_id is None:
                continue
            if event.shell_id not in visible:
                record = self.store.get_shell(event.shell_id)
                seen = record is not None and role_on(self.store, principal, record) is not None
                visible[event.shell_id] = self.ctx.public(record) if record is not None and seen else None
            shell = visible[event.shell_id]
            if shell is not None:
                items.append(FeedItem(event, shell))
        return items, events[-1].id if events else cursor, len(events) == PAGE

    def _check_token(self, principal: Principal) -> None:
        if principal.token_id is None:
            return
        token = self.store.tenancy.get_token(principal.token_id)
        if token is None:
            raise Unauthenticated("The token is not known to this server.")
        check_alive(token, datetime.now(UTC))

    def _wake(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _watch(self) -> None:
        last = self.store.last_event_id()
        while self._followers and not self._closed:
            await asyncio.sleep(self.poll_s)
            newest = self.store.last_event_id()
            if newest != last:
                last = newest
                self._wake()
