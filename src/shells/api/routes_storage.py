"""REST v1 of storage (docs/storage.md): ``DELETE /v1/snapshots/{id}`` (and its blobs in the
object store), ``GET /v1/shells/{id}/sync`` (workspace sync)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from .contract import AUTHED, BodyRoute, errors
from .deps import ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.delete("/v1/snapshots/{snapshot_id}", status_code=204, responses=errors(*AUTHED, 404))
async def delete_snapshot(control: ControlDep, principal: PrincipalDep, snapshot_id: str) -> Response:
    """Delete the snapshot on this machine and, in the object store, every blob of it that no
    other kept snapshot names. Shells created from it keep running with their own copies."""
    await control.durable.delete_snapshot(principal, snapshot_id)
    return Response(status_code=204)


@router.get("/v1/shells/{shell_id}/sync", responses=errors(*AUTHED, 404))
async def sync_status(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """Where the shell's /workspace is mirrored and how far: ``state`` (synced, pending, failing),
    files and bytes in the bucket, files still to send, the last pass and the last error.
    ``{"enabled": false}`` for a shell created without ``sync``."""
    return control.sync.status(principal, shell_id)
