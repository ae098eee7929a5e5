"""The live feed over Server-Sent Events: ``GET /v1/events/stream``.

Each message is one event of a shell the caller may see, with the shell's record as it is now::

    id: 4711
    event: shell
    data: {"event": {...}, "shell": {...}}

The first message is ``event: ready`` with ``{"cursor": N}``: the feed holds every event after N, so
a client that lists shells after it arrived misses nothing. Reconnect with ``?after=`` or the
standard ``Last-Event-ID`` header to resume. Comments (``: ping``) keep idle connections alive. A
token revoked or expired mid-stream ends it with ``event: error`` and the usual error body.

It is read with the bearer header like every other endpoint, so a browser uses ``fetch`` and reads
the body as a stream (``EventSource`` cannot send headers, and a token in a URL ends up in logs).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from ..control.feed import Feed
from ..domain.errors import InvalidRequest, ShellsError
from ..domain.limits import MAX_API_INT
from ..domain.principal import Principal
from .contract import BodyRoute
from .deps import ControlDep, Cursor, PrincipalDep
from .errors import error_body
from .stream_docs import SSE_RESPONSES

router = APIRouter(route_class=BodyRoute)
RETRY_MS = 2000
"""How long a disconnected client waits before it reconnects (the SSE ``retry`` field)."""


def _message(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _after(after: int | None, last_event_id: str | None) -> int | None:
    if after is not None or last_event_id is None:
        return after
    text = last_event_id.strip()
    if not (text.isdigit() and int(text) <= MAX_API_INT):
        raise InvalidRequest("'Last-Event-ID' must be the id of an event, a whole number.")
    return int(text)


@router.get("/v1/events/stream", response_class=StreamingResponse, responses=SSE_RESPONSES)
async def event_stream(
    control: ControlDep,
    principal: PrincipalDep,
    after: Cursor | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Every event of every shell the caller can see, as it happens (Server-Sent Events)."""
    cursor = control.feed.cursor(principal, _after(after, last_event_id))
    return StreamingResponse(
        _stream(control.feed, principal, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(feed: Feed, principal: Principal, cursor: int) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n" + _message("ready", {"cursor": cursor})
    try:
        async for item in feed.follow(principal, cursor):
            if item is None:
                yield ": ping\n\n"
            else:
                yield _message("shell", item.to_public(), item.event.id)
    except ShellsError as exc:
        yield _message("error", error_body(exc.code, exc.message, exc.details))
