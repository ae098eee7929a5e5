"""Request-scoped dependencies shared by every route: the control plane and the caller.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies and routes in a worker
thread, and those hops were the largest single cost of an exec round trip. Nothing here blocks for
longer than an SQLite read.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Query, Request

from ..control.service import Control
from ..domain.errors import InvalidRequest, PayloadTooLarge
from ..domain.limits import MAX_API_INT, MAX_JSON_BODY_BYTES
from ..domain.principal import Principal
from .drain import Drain

DOOR = "rest"
MAX_PAGE = 5000

Cursor = Annotated[int, Query(ge=0, le=MAX_API_INT, description="the id of the last event already seen")]
"""An event id to read after: bounded, so a number past 64 bits is a 400, not a store overflow."""
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE)]


async def get_control(request: Request) -> Control:
    return cast(Control, request.app.state.control)


async def get_drain(request: Request) -> Drain:
    return cast(Drain, request.app.state.drain)


async def get_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return cast(Control, request.app.state.control).auth.principal(authorization)


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_API_INT:
        raise InvalidRequest(f"The number {text[:32]} is out of range (at most {MAX_API_INT}).")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    """Read a JSON object body with a size cap, integers that fit in 64 bits, and a clear error for
    anything else (a body that stops arriving is ``api.body_timeout``'s)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BODY_BYTES:
        raise PayloadTooLarge(f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise PayloadTooLarge(f"The JSON body is larger than {MAX_JSON_BODY_BYTES} bytes.")
    if not raw:
        return {}
    try:
        body = json.loads(raw, parse_int=_bounded_int)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


ControlDep = Annotated[Control, Depends(get_control)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BodyDep = Annotated[dict[str, Any], Depends(json_body)]
DrainDep = Annotated[Drain, Depends(get_drain)]
