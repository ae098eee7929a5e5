"""Shells errors in the forms E2B's SDKs read: the control plane's ``{"code", "message"}`` bodies
with the statuses the SDK maps to its exceptions (401, 404, 409, 429…), plain-HTTP envd errors the
same way, and Connect codes for envd RPCs (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE…)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from starlette.responses import JSONResponse

from ..api.errors import status_for
from ..control.request_scope import note_outcome
from ..domain import errors as e
from ..domain.errors import ShellsError

_CODES: list[tuple[type[e.ShellsError], Code]] = [
    (e.Unauthenticated, Code.UNAUTHENTICATED),
    (e.PermissionDenied, Code.PERMISSION_DENIED),
    (e.ShellNotFound, Code.UNAVAILABLE),  # the SDK's "sandbox is gone"
    (e.NotFound, Code.NOT_FOUND),
    (e.AlreadyExists, Code.ALREADY_EXISTS),
    (e.InvalidState, Code.UNAVAILABLE),  # not running: paused or stopped
    (e.Conflict, Code.FAILED_PRECONDITION),
    (e.InvalidRequest, Code.INVALID_ARGUMENT),
    (e.CommandNotFound, Code.INVALID_ARGUMENT),
    (e.PayloadTooLarge, Code.RESOURCE_EXHAUSTED),
    (e.QuotaExceeded, Code.RESOURCE_EXHAUSTED),
    (e.RateLimited, Code.RESOURCE_EXHAUSTED),
    (e.Timeout, Code.DEADLINE_EXCEEDED),
    (e.Unavailable, Code.UNAVAILABLE),
]


def connect_error(exc: e.ShellsError) -> ConnectError:
    note_outcome(exc.code)
    code = next((c for cls, c in _CODES if isinstance(exc, cls)), Code.INTERNAL)
    return ConnectError(code, exc.message)


def api_status(exc: e.ShellsError) -> int:
    """The control plane's status: E2B answers 429 for a full concurrency quota, and the SDK reads it."""
    if isinstance(exc, e.QuotaExceeded):
        return 429
    if isinstance(exc, e.InvalidState):
        return 409
    return status_for(exc)


def api_error(exc: e.ShellsError) -> JSONResponse:
    note_outcome(exc.code)
    status = api_status(exc)
    return JSONResponse({"code": status, "message": exc.message}, status)


def envd_http_error(exc: e.ShellsError) -> JSONResponse:
    """envd's plain-HTTP routes (``/files``): 507 for a full disk, 502 for a sandbox that is gone."""
    note_outcome(exc.code)
    if isinstance(exc, e.ShellNotFound | e.InvalidState):
        status = 502
    elif isinstance(exc, e.QuotaExceeded):
        status = 507
    else:
        status = status_for(exc)
    return JSONResponse({"code": status, "message": exc.message}, status)


P = ParamSpec("P")
R = TypeVar("R")


def rpc(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A unary envd method whose Shells errors leave as the Connect errors the SDK maps."""

    @functools.wraps(method)
    async def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except ShellsError as exc:
            raise connect_error(exc) from None

    return answer
