"""The documented shapes of the API's streams and results: the NDJSON lines of exec, run and a
template build, and the Server-Sent Events of the feed. Used only for ``/openapi.json``; the writers
are ``api.exec_stream``, ``api.routes_templates`` and ``api.routes_events``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .contract import AUTHED, BODY, INSIDE, ErrorBody, ErrorDetail, errors


class ExitFields(BaseModel):
    exit_code: int = Field(description="The exit code; 128+N when signal N killed it.")
    signal: int | None = Field(description="The signal that killed it, if one did.")
    timed_out: bool = Field(description="It ran past timeout_s and was killed.")
    truncated: bool = Field(description="Output past the server's cap was dropped.")
    duration_ms: float = Field(description="How long it ran.")


class ExecResultBody(ExitFields):
    """``?wait=true``: the whole run in one object."""

    stdout: str = Field(description="Standard output (UTF-8, invalid bytes replaced).")
    stderr: str = Field(description="Standard error.")


class StartedLine(BaseModel):
    type: Literal["started"]
    pid: int = Field(description="The process id inside the shell.")


class OutputLine(BaseModel):
    type: Literal["stdout", "stderr"]
    data: str = Field(description="A chunk of output, UTF-8 (invalid bytes replaced).")


class ExitLine(ExitFields):
    type: Literal["exit"]


class ErrorLine(BaseModel):
    """The stream broke after it started (the shell failed, or the server is shutting down)."""

    type: Literal["error"]
    error: ErrorDetail


class StepLine(BaseModel):
    type: Literal["step"]
    index: int = Field(description="The step's number, from 1.")
    total: int = Field(description="How many steps the spec has.")
    name: str = Field(description="What the step does.")


class BuildOutputLine(BaseModel):
    type: Literal["output"]
    data: str = Field(description="Output of the step running.")


class BuildDoneLine(BaseModel):
    """The last line: ``cached`` (the same spec was built before) or ``done``."""

    type: Literal["cached", "done"]
    template: dict[str, Any] = Field(description="The template, as GET /v1/templates/{name} answers it.")
    seconds: float | None = Field(None, description="done: how long the build took.")


class FeedReady(BaseModel):
    """``event: ready``, the first message: the feed holds every event after ``cursor``."""

    cursor: int


class FeedShell(BaseModel):
    """``event: shell`` (its SSE ``id`` is the event's id): one event and the shell as it is now."""

    event: dict[str, Any] = Field(description="The event, as GET /v1/shells/{id}/events lists it.")
    shell: dict[str, Any] = Field(description="The shell's record, as GET /v1/shells/{id} answers it.")


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def ndjson_lines(*models: type[BaseModel]) -> dict[str, Any]:
    """An NDJSON media type: every line is one JSON object of one of ``models``."""
    return {"schema": {"oneOf": [schema_of(m) for m in models]}, "x-ndjson": True}


STREAM_MODELS: tuple[type[BaseModel], ...] = (
    StartedLine,
    OutputLine,
    ExitLine,
    ErrorLine,
    StepLine,
    BuildOutputLine,
    BuildDoneLine,
    FeedReady,
    FeedShell,
)
"""Models referenced by hand-written content entries; ``api.openapi_doc`` adds them to the components."""

EXEC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ExecResultBody,
        "description": "application/x-ndjson (the default): one JSON object a line, started, then "
        "stdout/stderr chunks, then exit, or error if the stream broke after it started. "
        "application/json with ?wait=true: the whole run in one object.",
        "content": {"application/x-ndjson": ndjson_lines(StartedLine, OutputLine, ExitLine, ErrorLine)},
    },
    **errors(*AUTHED, *BODY, *INSIDE),
}
"""The answers of exec and run: a command that cannot start is a 4xx before the stream begins."""

BUILD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "application/x-ndjson (the default): step and output lines, then cached or "
        "done, or error. application/json with ?wait=true: the template.",
        "content": {
            "application/x-ndjson": ndjson_lines(StepLine, BuildOutputLine, BuildDoneLine, ErrorLine),
            "application/json": {"schema": {"type": "object"}},
        },
    },
    **errors(*AUTHED, *BODY, *INSIDE, 422),
}

SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: first `event: ready` (FeedReady), then `event: shell` "
        "messages (FeedShell) with the event id as the SSE id, `: ping` comments while idle, and "
        "`event: error` (ErrorBody) when the token is revoked or expires mid-stream.",
        "content": {
            "text/event-stream": {
                "schema": {"type": "string"},
                "x-sse-events": {
                    "ready": schema_of(FeedReady),
                    "shell": schema_of(FeedShell),
                    "error": schema_of(ErrorBody),
                },
            }
        },
    },
    **errors(*AUTHED),
}
