"""REST v1 for tenancy: tenants, principals, API tokens, per-shell grants and the audit trail.
Routes only translate HTTP to control calls; every rule lives in the control layer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..control.bodies import GrantBody, QuotasUpdateBody, TenantBody, TokenBody
from ..control.tokens import TokenRequest
from ..domain.audit import AuditQuery, parse_time
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import ControlDep, Cursor, PageSize, PrincipalDep

router = APIRouter(route_class=BodyRoute)
LIST = errors(*AUTHED)
ONE = errors(*AUTHED, 404)
WRITE = errors(*AUTHED, *BODY, 404, 409)


@router.post("/v1/tenants", status_code=201, responses=WRITE)
async def create_tenant(control: ControlDep, principal: PrincipalDep, body: TenantBody) -> dict[str, Any]:
    return control.tenancy.create_tenant(principal, body.wire())


@router.get("/v1/tenants", responses=LIST)
async def list_tenants(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"tenants": control.tenancy.list_tenants(principal)}


@router.get("/v1/tenants/{name}", responses=ONE)
async def get_tenant(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.tenancy.get_tenant(principal, name)


@router.patch("/v1/tenants/{name}", responses=WRITE)
async def set_tenant_quotas(
    control: ControlDep, principal: PrincipalDep, name: str, body: QuotasUpdateBody
) -> dict[str, Any]:
    return control.tenancy.set_quotas(principal, name, body.wire())


@router.get("/v1/principals", responses=LIST)
async def list_principals(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"principals": [p.to_public() for p in control.tenancy.principals(principal)]}


@router.post("/v1/tokens", status_code=201, responses=WRITE)
async def create_token(control: ControlDep, principal: PrincipalDep, body: TokenBody) -> dict[str, Any]:
    record, token = control.tokens.create(principal, TokenRequest.parse(body.wire()))
    return record.to_public() | {"token": token}


@router.get("/v1/tokens", responses=ONE)
async def list_tokens(
    control: ControlDep, principal: PrincipalDep, tenant: str | None = None
) -> dict[str, Any]:
    return {"tokens": [t.to_public() for t in control.tokens.list(principal, tenant)]}


@router.delete("/v1/tokens/{token_id}", status_code=204, responses=ONE)
async def revoke_token(control: ControlDep, principal: PrincipalDep, token_id: str) -> Response:
    control.tokens.revoke(principal, token_id)
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/grants", status_code=201, responses=WRITE)
async def grant(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: GrantBody
) -> dict[str, Any]:
    return control.tenancy.grant(principal, shell_id, body.wire()).to_public()


@router.get("/v1/shells/{shell_id}/grants", responses=ONE)
async def list_grants(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return {"grants": [g.to_public() for g in control.tenancy.grants(principal, shell_id)]}


@router.delete("/v1/shells/{shell_id}/grants/{grantee}", status_code=204, responses=ONE)
async def revoke_grant(control: ControlDep, principal: PrincipalDep, shell_id: str, grantee: str) -> Response:
    control.tenancy.revoke_grant(principal, shell_id, grantee)
    return Response(status_code=204)


@router.get("/v1/audit", responses=LIST)
async def audit(
    control: ControlDep,
    principal: PrincipalDep,
    shell: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    door: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: Cursor = 0,
    limit: PageSize = 500,
) -> dict[str, Any]:
    query = AuditQuery(
        shell=shell,
        actor=actor,
        action=action,
        door=door,
        outcome=outcome,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )
    return {"events": [e.to_public() for e in control.audit.search(principal, query, after, limit)]}
