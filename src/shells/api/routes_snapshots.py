"""REST v1 for deleting a snapshot: ``DELETE /v1/snapshots/{id}`` (taking one is a shell action,
listing them ``GET /v1/snapshots``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from .contract import AUTHED, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.delete("/v1/snapshots/{snapshot_id}", status_code=204, responses=errors(*AUTHED, 404))
async def delete_snapshot(control: ControlDep, principal: PrincipalDep, snapshot_id: str) -> Response:
    """Delete a snapshot of a shell you own (its quota slot is free at once). Shells already created
    from it keep running; new ones can no longer name it. 404 for an unknown one or another
    tenant's."""
    await control.delete_snapshot(principal, snapshot_id, DOOR)
    return Response(status_code=204)
