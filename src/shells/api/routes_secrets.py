"""REST v1 for tenant secrets: create, list, get, update (rotate), delete. No answer holds a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..control.bodies import SecretCreateBody, SecretUpdateBody
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/secrets", status_code=201, responses=errors(*AUTHED, *BODY, 409))
async def create_secret(
    control: ControlDep, principal: PrincipalDep, body: SecretCreateBody
) -> dict[str, Any]:
    """Writing secrets needs ``tenant.admin``: whoever sets a secret's hosts can send its value there."""
    return control.secrets.create(principal, body.wire(), DOOR).to_public()


@router.get("/v1/secrets", responses=errors(*AUTHED))
async def list_secrets(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"secrets": [s.to_public() for s in control.secrets.list_secrets(principal)]}


@router.get("/v1/secrets/{name}", responses=errors(*AUTHED, 404))
async def get_secret(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.secrets.get(principal, name).to_public()


@router.put("/v1/secrets/{name}", responses=errors(*AUTHED, *BODY, 404))
async def update_secret(
    control: ControlDep, principal: PrincipalDep, name: str, body: SecretUpdateBody
) -> dict[str, Any]:
    return control.secrets.update(principal, name, body.wire(), DOOR).to_public()


@router.delete("/v1/secrets/{name}", status_code=204, responses=errors(*AUTHED, 404))
async def delete_secret(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    control.secrets.delete(principal, name, DOOR)
    return Response(status_code=204)
