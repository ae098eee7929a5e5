"""REST v1 for the instance's nodes (platform admins): ``GET /v1/admin/nodes``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .contract import AUTHED, BodyRoute, errors
from .deps import ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.get("/v1/admin/nodes", responses=errors(*AUTHED))
async def list_nodes(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    """Every node with its region, zone, classes, load (shells placed, free CPU, memory, disk) and
    state (``ready`` or ``gone``; ``cordoned``)."""
    return {"nodes": control.nodes(principal)}
