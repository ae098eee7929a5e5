"""REST v1 for a shell's hard time-to-live: ``POST /v1/shells/{id}/timeout``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..control.requests import parse_ttl, reject_unknown
from ..domain.errors import InvalidRequest
from .deps import DOOR, BodyDep, ControlDep, PrincipalDep

router = APIRouter()


@router.post("/v1/shells/{shell_id}/timeout", responses={400: {}, 401: {}, 403: {}, 404: {}, 429: {}})
async def set_timeout(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: BodyDep
) -> dict[str, Any]:
    """``{"timeout_s": N}``: the shell ends (its ``on_timeout``: kill or pause) N seconds from now,
    0 at once; ``"extend_only": true`` keeps a later expiry already set."""
    reject_unknown(body, {"timeout_s", "extend_only"})
    if "timeout_s" not in body:
        raise InvalidRequest("'timeout_s' is required: seconds from now.", {"field": "timeout_s"})
    extend_only = body.get("extend_only", False)
    if not isinstance(extend_only, bool):
        raise InvalidRequest("'extend_only' must be true or false.", {"field": "extend_only"})
    shell = control.shells.set_timeout(
        principal, shell_id, parse_ttl(body["timeout_s"]), DOOR, extend_only=extend_only
    )
    return shell.to_public()
