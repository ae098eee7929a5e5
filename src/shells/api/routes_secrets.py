"""REST v1 for tenant secrets: create, list, get, update (rotate), delete. No answer holds a value."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid_request: a field to fix, named in the message"},
    401: {"description": "unauthenticated"},
    403: {"description": "permission_denied (writing secrets needs tenant.admin) or quota_exceeded"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "secret_not_found"}}


class SecretCreateBody(BaseModel):
    """A new secret: ``hosts`` are names (``api.github.com``) or wildcards (``*.example.org``)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    value: str
    hosts: list[str]
    header: str | None = None


class SecretUpdateBody(BaseModel):
    """What changes: a new ``value`` is a rotation; left-out fields stay."""

    model_config = ConfigDict(extra="forbid")
    value: str | None = None
    hosts: list[str] | None = None
    header: str | None = None


@router.post(
    "/v1/secrets",
    status_code=201,
    responses={**_ERRORS, 409: {"description": "already_exists"}},
)
async def create_secret(
    control: ControlDep, principal: PrincipalDep, body: SecretCreateBody
) -> dict[str, Any]:
    return control.secrets.create(principal, body.model_dump(exclude_unset=True), DOOR).to_public()


@router.get("/v1/secrets", responses=_ERRORS)
async def list_secrets(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"secrets": [s.to_public() for s in control.secrets.list_secrets(principal)]}


@router.get("/v1/secrets/{name}", responses={**_ERRORS, **_NOT_FOUND})
async def get_secret(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.secrets.get(principal, name).to_public()


@router.put("/v1/secrets/{name}", responses={**_ERRORS, **_NOT_FOUND})
async def update_secret(
    control: ControlDep, principal: PrincipalDep, name: str, body: SecretUpdateBody
) -> dict[str, Any]:
    return control.secrets.update(principal, name, body.model_dump(exclude_unset=True), DOOR).to_public()


@router.delete("/v1/secrets/{name}", status_code=204, responses={**_ERRORS, **_NOT_FOUND})
async def delete_secret(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    control.secrets.delete(principal, name, DOOR)
    return Response(status_code=204)
