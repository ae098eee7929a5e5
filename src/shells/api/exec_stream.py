"""The wire form of a running command, shared by exec and run: NDJSON events, or one JSON object.

Stream: ``{"type":"started","pid"}``, then ``{"type":"stdout"|"stderr","data"}`` chunks, then
``{"type":"exit",...}`` (or ``{"type":"error","error":{...}}`` if the shell failed mid-way, or the
server is shutting down: code ``shutting_down``). With ``?wait=true``:
``{"stdout","stderr","exit_code","signal","timed_out","truncated","duration_ms"}``, the output cut at
``WAIT_OUTPUT_CAP_BYTES`` (``truncated``).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ..domain.errors import ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecStarted, collect
from .drain import Drain
from .errors import error_body

NDJSON = "application/x-ndjson"


def error_line(exc: ShellsError) -> bytes:
    """An NDJSON line reporting an error after the response has started."""
    return json.dumps({"type": "error", **error_body(exc.code, exc.message, exc.details)}).encode() + b"\n"


async def exec_response(
    events: AsyncIterator[ExecEvent], wait: bool, drain: Drain
) -> JSONResponse | StreamingResponse:
    if wait:
        try:
            result = await drain.run(collect(_through_exit(events)))
        except BaseException:
            await _close(events)
            raise
        # The rest of the stream (the audit row of the command, ``control.inside``) is written once
        # the answer is sent: the caller does not wait for the write, and the row is still written.
        return JSONResponse(result.to_public(), background=BackgroundTask(_close, events))
    first = await _first(events)
    return StreamingResponse(_ndjson(first, events, drain), media_type=NDJSON)


async def _through_exit(events: AsyncIterator[ExecEvent]) -> AsyncIterator[ExecEvent]:
    """The events up to and with the exit, leaving ``events`` open after it."""
    async for event in events:
        yield event
        if isinstance(event, ExecExit):
            return


async def _close(events: AsyncIterator[ExecEvent]) -> None:
    await events.aclose()  # type: ignore[attr-defined]


async def _first(events: AsyncIterator[ExecEvent]) -> ExecEvent | None:
    """Pull the first event (``started``, sent as soon as the process is spawned) before answering,
    so a command that cannot start is a 4xx, not a stream."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


async def _ndjson(
    first: ExecEvent | None, events: AsyncIterator[ExecEvent], drain: Drain
) -> AsyncIterator[bytes]:
    decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}

    def line(ev: ExecEvent) -> bytes:
        if isinstance(ev, ExecExit):
            return json.dumps({"type": "exit", **ev.to_public()}).encode() + b"\n"
        if isinstance(ev, ExecStarted):
            return json.dumps({"type": "started", "pid": ev.pid}).encode() + b"\n"
        return json.dumps({"type": ev.stream, "data": decoders[ev.stream].decode(ev.data)}).encode() + b"\n"

    try:
        if first is not None:
            yield line(first)
        async for ev in drain.stream(events):
            yield line(ev)
    except ShellsError as exc:
        yield error_line(exc)
    finally:
        await _close(events)
