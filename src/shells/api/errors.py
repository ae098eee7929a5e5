"""The one place where error codes become HTTP statuses."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..control.request_scope import note_outcome, redacted
from ..domain import errors as e

log = logging.getLogger(__name__)

STATUS_BY_CLASS: list[tuple[type[e.ShellsError], int]] = [
    (e.MisdirectedRequest, 421),
    (e.InvalidRequest, 400),
    (e.Unauthenticated, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.CommandNotFound, 400),
    (e.TemplateBuildFailed, 422),
    (e.PayloadTooLarge, 413),
    (e.QuotaExceeded, 403),
    (e.RateLimited, 429),
    (e.AgentError, 502),
    (e.Unavailable, 503),
    (e.RequestTimeout, 408),
    (e.Timeout, 504),
    (e.RuntimeFailure, 500),
]


def status_for(exc: e.ShellsError) -> int:
    for cls, status in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The wire form of every error; the request's audit record takes its outcome from here."""
    note_outcome(code)
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _headers(exc: e.ShellsError) -> dict[str, str] | None:
    if isinstance(exc, e.Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, e.RateLimited | e.ShuttingDown):
        return {"Retry-After": str(max(1, math.ceil(float(exc.details.get("retry_after_s", 1)))))}
    return None


def error_response(exc: e.ShellsError) -> JSONResponse:
    """The answer to a deliberate error (a runtime failure names no host detail, only the request)."""
    if isinstance(exc, e.RuntimeFailure):
        exc = redacted(exc)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_for(exc), headers=_headers(exc)
    )


def unexpected_response(exc: BaseException) -> JSONResponse:
    """A bug still answers in the error format; the traceback goes to the log only."""
    return error_response(e.RuntimeFailure(f"unexpected {type(exc).__name__}: {exc}"))


class UnexpectedErrors:
    """Where an unexpected exception ends: answered 500 in the error format, or only logged once
    the answer is complete. Never passed on: Starlette's own handler for ``Exception`` re-raises
    after answering, and uvicorn then closes the keep-alive connection, so the client's next,
    unrelated request on it would be reset unprocessed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def watched(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started and not complete:
                raise  # half an answer: only closing the connection can tell the client
            log.exception("unexpected %s", type(exc).__name__)
            if not started:
                await unexpected_response(exc)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Deliberate errors answer through Starlette's handlers; unexpected ones in ``UnexpectedErrors``."""

    async def shells_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.ShellsError)
        return error_response(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())[1:]), "problem": err.get("msg", "")}
            for err in exc.errors()
        ]
        first = problems[0] if problems else {"field": "", "problem": "invalid"}
        message = f"Invalid request: {first['field'] or 'body'}: {first['problem']}."
        return JSONResponse(error_body("invalid_request", message, {"problems": problems}), 400)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    app.add_middleware(UnexpectedErrors)
    app.add_exception_handler(e.ShellsError, shells_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
