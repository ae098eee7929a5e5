"""REST v1 of storage (docs/storage.md): ``GET /v1/shells/{id}/sync`` (workspace sync). Deleting a
snapshot (and its blobs in the object store) is ``routes_snapshots``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .contract import AUTHED, BodyRoute, errors
from .deps import ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.get("/v1/shells/{shell_id}/sync", responses=errors(*AUTHED, 404))
async def sync_status(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """Where the shell's /workspace is mirrored and how far: ``state`` (synced, pending, failing),
    files and bytes in the bucket, files still to send, the last pass and the last error.
    ``{"enabled": false}`` for a shell created without ``sync``."""
    return control.sync.status(principal, shell_id)
