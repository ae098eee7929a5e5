"""REST v1 of storage (docs/storage.md): volumes (create, list, get, delete: 409 while a shell holds
it) and ``GET /v1/shells/{id}/sync`` (workspace sync). Bucket mounts and volume attachments are
fields of ``POST /v1/shells``; deleting a snapshot (and its blobs in the object store) is
``routes_snapshots``."""

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


@router.get("/v1/shells/{shell_id}/sync", responses=errors(*AUTHED, 404))
async def sync_status(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """Where the shell's /workspace is mirrored and how far: ``state`` (synced, pending, failing),
    files and bytes in the bucket, files still to send, the last pass and the last error.
    ``{"enabled": false}`` for a shell created without ``sync``."""
    return control.sync.status(principal, shell_id)
