"""Request-scoped dependencies shared by every route: the control plane and the caller.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies and routes in a worker
thread, and those hops were the largest single cost of an exec round trip. Nothing here blocks for
longer than an SQLite read.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request

from ..control.service import Control
from ..domain.errors import InvalidRequest, PayloadTooLarge
from ..domain.principal import Principal

MAX_JSON_BODY = 1024 * 1024
DOOR = "rest"


async def get_control(request: Request) -> Control:
    return cast(Control, request.app.state.control)


async def get_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return cast(Control, request.app.state.control).auth.principal(authorization)


async def json_body(request: Request) -> dict[str, Any]:
    """Read a JSON object body with a size cap and a clear error for anything else."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise PayloadTooLarge(f"The JSON body is larger than {MAX_JSON_BODY} bytes.")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            raise PayloadTooLarge(f"The JSON body is larger than {MAX_JSON_BODY} bytes.")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return body


ControlDep = Annotated[Control, Depends(get_control)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BodyDep = Annotated[dict[str, Any], Depends(json_body)]
