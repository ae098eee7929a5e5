"""REST v1 for webhooks: register, list, delete, the delivery log, and a test delivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..control.bodies import WebhookBody
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import ControlDep, PageSize, PrincipalDep

router = APIRouter(route_class=BodyRoute)
ONE = errors(*AUTHED, 404)


@router.post("/v1/webhooks", status_code=201, responses=errors(*AUTHED, *BODY))
async def create_webhook(control: ControlDep, principal: PrincipalDep, body: WebhookBody) -> dict[str, Any]:
    """``{"url", "events": [...] or ["*"], "secret"?}``; the answer shows the secret, once. A URL no
    webhook may reach is a 400 naming ``url``."""
    return await control.webhooks.create(principal, body.url, body.events, body.secret)


@router.get("/v1/webhooks", responses=errors(*AUTHED))
async def list_webhooks(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"webhooks": [w.to_public() for w in control.webhooks.all(principal)]}


@router.get("/v1/webhooks/{webhook_id}", responses=ONE)
async def get_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> dict[str, Any]:
    return control.webhooks.get(principal, webhook_id).to_public()


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=ONE)
async def delete_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> Response:
    control.webhooks.delete(principal, webhook_id)
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", responses=ONE)
async def webhook_deliveries(
    control: ControlDep, principal: PrincipalDep, webhook_id: str, limit: PageSize = 100
) -> dict[str, Any]:
    """The delivery log, newest first: state, attempts, the receiver's last status or error."""
    found = control.webhooks.deliveries(principal, webhook_id, limit)
    return {"deliveries": [d.to_public() for d in found]}


@router.post("/v1/webhooks/{webhook_id}/test", status_code=202, responses=ONE)
async def test_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> dict[str, Any]:
    """Queue a ``test`` delivery at once; follow it in the delivery log."""
    return control.webhooks.send_test(principal, webhook_id).to_public()
