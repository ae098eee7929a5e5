"""The one place where error codes become HTTP statuses."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..control.request_scope import note_outcome, redacted
from ..domain import errors as e

STATUS_BY_CLASS: list[tuple[type[e.ShellsError], int]] = [
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
    if isinstance(exc, e.RateLimited):
        return {"Retry-After": str(max(1, math.ceil(float(exc.details.get("retry_after_s", 1)))))}
    return None


def install(app: FastAPI) -> None:
    async def shells_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.ShellsError)
        if isinstance(exc, e.RuntimeFailure):
            exc = redacted(exc)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_for(exc), headers=_headers(exc)
        )

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

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        """A bug still answers in the error format (the traceback goes to the log as well)."""
        failure = redacted(e.RuntimeFailure(f"unexpected {type(exc).__name__}: {exc}"))
        return JSONResponse(error_body(failure.code, failure.message, failure.details), 500)

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(e.ShellsError, shells_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
