"""REST v1 for moving shells between nodes: drain and uncordon a node (platform admins), and start
a lost shell again on another node (``control.relocate``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .contract import AUTHED, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/admin/nodes/{name}/drain", responses=errors(*AUTHED, 400, 409))
async def drain_node(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    """Cordon the node (no new shell is placed there) and move every paused and stopped shell off
    it through the object store. Running shells stay and are listed under ``left`` with the reason;
    so is a shell that could not move (its state stays as it was, on this node)."""
    report = await control.relocation.drain(principal, name, DOOR)
    return report.to_public()


@router.post("/v1/admin/nodes/{name}/uncordon", responses=errors(*AUTHED, 400))
async def uncordon_node(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    """New shells may be placed on the node again (shells moved off it stay where they went)."""
    return control.relocation.uncordon(principal, name)


@router.post("/v1/shells/{shell_id}/recover", responses=errors(*AUTHED, 404, 409, 503))
async def recover_shell(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """Start a ``lost`` shell again on another node from the newer of its saved state and its newest
    durable snapshot; it comes back ``paused`` or ``stopped`` (its ``state_reason`` says from what),
    to be resumed or started next. 409 when it is not lost or nothing of it is in the object store."""
    shell = await control.relocation.recover(principal, shell_id, DOOR)
    return control.ctx.public(shell)
