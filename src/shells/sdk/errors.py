"""The one place where the SDK turns a failure into an exception.

An error answer ``{"error": {"code", "message", "details"}}`` becomes the same class the server
raised (``ERRORS_BY_CODE``); a code this SDK does not know falls back to the class of its HTTP
status, so ``except NotFound`` still works for a newer server's ``gizmo_not_found``. Failures
that never got an answer become :class:`Unavailable` or :class:`Timeout`. Every exception carries
the request id, which is also in the server's log.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..domain.errors import (
    ERRORS_BY_CODE,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RuntimeFailure,
    ShellsError,
    Timeout,
    Unauthenticated,
    Unavailable,
)

REQUEST_ID_HEADER = "X-Request-Id"

_BY_STATUS: dict[int, type[ShellsError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    500: RuntimeFailure,
    503: Unavailable,
    504: Timeout,
}


def error_from_wire(status: int, payload: Any, request_id: str | None) -> ShellsError:
    """The exception for an error ``payload`` (a decoded body, or an NDJSON ``error`` line)."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        code, message = err["code"], str(err.get("message") or err["code"])
        details = dict(err["details"]) if isinstance(err.get("details"), dict) else {}
    else:
        code, message, details = "", f"The server answered HTTP {status} without an error body.", {}
    cls = ERRORS_BY_CODE.get(code) or _BY_STATUS.get(status, ShellsError)
    if code and code != cls.code:
        details.setdefault("code", code)
    exc = cls(message, details)
    exc.request_id = request_id
    return exc


def error_from_response(response: httpx.Response) -> ShellsError:
    """The exception for a failed answer whose body has been read."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return error_from_wire(response.status_code, payload, response.headers.get(REQUEST_ID_HEADER))


def error_from_transport(exc: httpx.TransportError, url: str, request_id: str) -> ShellsError:
    """The exception for a request to ``url`` that got no (complete) answer."""
    if isinstance(exc, httpx.TimeoutException):
        error: ShellsError = Timeout(
            f"No answer from {url} in time ({type(exc).__name__}); raise the client's timeout= "
            "or check that the server is not overloaded."
        )
    else:
        error = Unavailable(
            f"The connection to {url} failed ({type(exc).__name__}: {exc}); check SHELLS_BASE_URL and "
            "that the server runs. Requests that may have reached it (exec, create, actions) are not "
            "sent again."
        )
    error.request_id = request_id
    return error
