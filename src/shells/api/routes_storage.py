"""REST v1 for volumes: create, list, get, delete (409 while a shell holds it). Bucket mounts and
volume attachments are fields of ``POST /v1/shells`` (docs/storage.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..control.bodies import VolumeCreateBody
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/volumes", status_code=201, responses=errors(*AUTHED, *BODY, 409))
async def create_volume(
    control: ControlDep, principal: PrincipalDep, body: VolumeCreateBody
) -> dict[str, Any]:
    rec = await control.storage.create_volume(principal, body.name, body.size_gib, DOOR)
    return control.storage.public(rec)


@router.get("/v1/volumes", responses=errors(*AUTHED))
async def list_volumes(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"volumes": control.storage.list_volumes(principal)}


@router.get("/v1/volumes/{name}", responses=errors(*AUTHED, 404))
async def get_volume(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.storage.get_volume(principal, name)


@router.delete("/v1/volumes/{name}", status_code=204, responses=errors(*AUTHED, 404, 409))
async def delete_volume(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    await control.storage.delete_volume(principal, name, DOOR)
    return Response(status_code=204)
