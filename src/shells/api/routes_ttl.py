"""REST v1 for a shell's hard time-to-live: ``POST /v1/shells/{id}/timeout``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..control.bodies import TimeoutBody
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/shells/{shell_id}/timeout", responses=errors(*AUTHED, *BODY, 404, 409))
async def set_timeout(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: TimeoutBody
) -> dict[str, Any]:
    """``{"timeout_s": N}``: the shell ends (its ``on_timeout``: kill or pause) N seconds from now,
    0 at once; ``"extend_only": true`` keeps a later expiry already set."""
    shell = control.shells.set_timeout(
        principal, shell_id, body.timeout_s, DOOR, extend_only=body.extend_only
    )
    return shell.to_public()
