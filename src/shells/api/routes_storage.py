"""REST v1 for what the object store keeps (docs/storage.md): ``DELETE /v1/snapshots/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, Response

from .contract import AUTHED, BodyRoute, errors
from .deps import ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.delete("/v1/snapshots/{snapshot_id}", status_code=204, responses=errors(*AUTHED, 404))
async def delete_snapshot(control: ControlDep, principal: PrincipalDep, snapshot_id: str) -> Response:
    """Delete the snapshot on this machine and, in the object store, every blob of it that no
    other kept snapshot names. Shells created from it keep running with their own copies."""
    await control.durable.delete(principal, snapshot_id)
    return Response(status_code=204)
