"""REST v1 of a tenant's stored bucket credentials (docs/storage.md): create, list, delete. No
answer ever holds a secret; mounts and syncs name them as ``"credentials": "<name>"``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..control.bodies import BucketCredentialsCreateBody
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/bucket-credentials", status_code=201, responses=errors(*AUTHED, *BODY, 409))
async def create_bucket_credentials(
    control: ControlDep, principal: PrincipalDep, body: BucketCredentialsCreateBody
) -> dict[str, Any]:
    """Storing them needs ``tenant.admin``: every member may then reach buckets with the key."""
    rec = control.bucket_credentials.create(
        principal, body.name, body.access_key_id, body.secret_access_key, DOOR
    )
    return rec.to_public()


@router.get("/v1/bucket-credentials", responses=errors(*AUTHED))
async def list_bucket_credentials(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    """Names and key ids; never a secret."""
    return {"bucket_credentials": [r.to_public() for r in control.bucket_credentials.list(principal)]}


@router.delete("/v1/bucket-credentials/{name}", status_code=204, responses=errors(*AUTHED, 404))
async def delete_bucket_credentials(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    """Shells created with them keep their own sealed copy."""
    control.bucket_credentials.delete(principal, name, DOOR)
    return Response(status_code=204)
