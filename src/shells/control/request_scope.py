"""The request being served, as ambient context: its id, its door and (once authenticated) its caller.

A door sets it when a request arrives (``begin_request``); authentication adds the principal; the
error mapping adds the outcome; ``ControlContext.draft`` stamps events with it. Context variables
follow the request into every task it spawns, so a streamed response still sees it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from ..domain.audit import RequestInfo
from ..domain.errors import RuntimeFailure
from ..domain.principal import Principal

log = logging.getLogger(__name__)
_current: ContextVar[RequestInfo | None] = ContextVar("shells_request", default=None)


def begin_request(request_id: str, door: str) -> RequestInfo:
    info = RequestInfo(request_id=request_id, door=door)
    _current.set(info)
    return info


def resume_request(info: RequestInfo) -> None:
    """Serve ``info`` in this task too: for a door whose work runs in tasks it did not spawn (the MCP
    transport's)."""
    _current.set(info)


def current_request() -> RequestInfo | None:
    return _current.get()


def note_principal(principal: Principal) -> None:
    info = _current.get()
    if info is not None:
        info.principal = principal


def note_outcome(code: str) -> None:
    info = _current.get()
    if info is not None:
        info.outcome = code


def redacted(exc: RuntimeFailure) -> RuntimeFailure:
    """Host failures name host paths and devices: the log gets them, the caller a request id. Every
    door answers a runtime failure with this."""
    info = _current.get()
    request_id = info.request_id if info is not None else "-"
    log.error("request %s: runtime failure: %s %s", request_id, exc.message, exc.details)
    return RuntimeFailure(
        "The host runtime failed; an operator finds the cause in the server log under request id "
        f"{request_id}.",
        {"request_id": request_id},
    )


class RequestLogFilter(logging.Filter):
    """Stamps every log record with the request being served (``-`` outside one): its id, tenant and
    principal, so one request's lines can be found together."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current.get()
        principal = info.principal if info is not None else None
        record.request_id = info.request_id if info is not None else "-"
        record.tenant = principal.tenant if principal is not None else "-"
        record.principal = principal.id if principal is not None else "-"
        return True
