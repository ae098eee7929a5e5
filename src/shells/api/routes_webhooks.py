"""REST v1 for webhooks: register, list, delete, the delivery log, and a test delivery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from ..domain.errors import InvalidRequest
from .deps import BodyDep, ControlDep, PageSize, PrincipalDep

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid token"},
    403: {"description": "the token lacks tenant.admin"},
    404: {"description": "no such webhook (webhook_not_found)"},
}


class WebhookCreate(BaseModel):
    """The body of ``POST /v1/webhooks``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    url: str
    events: list[str]
    secret: str | None = None


def _parse(body: dict[str, Any]) -> WebhookCreate:
    """The body as the model, or the typed 400 naming the first field to fix."""
    try:
        return WebhookCreate.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        known = ", ".join(WebhookCreate.model_fields)
        raise InvalidRequest(
            f"'{field}': {first['msg']} (fields: {known}; url and events are required).", {"field": field}
        ) from None


@router.post(
    "/v1/webhooks",
    status_code=201,
    responses={400: {"description": "a field to fix, or a URL no webhook may reach"}, **_ERRORS},
)
async def create_webhook(control: ControlDep, principal: PrincipalDep, body: BodyDep) -> dict[str, Any]:
    """``{"url", "events": [...] or ["*"], "secret"?}``; the answer shows the secret, once."""
    req = _parse(body)
    return await control.webhooks.create(principal, req.url, req.events, req.secret)


@router.get("/v1/webhooks", responses=_ERRORS)
async def list_webhooks(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"webhooks": [w.to_public() for w in control.webhooks.all(principal)]}


@router.get("/v1/webhooks/{webhook_id}", responses=_ERRORS)
async def get_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> dict[str, Any]:
    return control.webhooks.get(principal, webhook_id).to_public()


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=_ERRORS)
async def delete_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> Response:
    control.webhooks.delete(principal, webhook_id)
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", responses=_ERRORS)
async def webhook_deliveries(
    control: ControlDep, principal: PrincipalDep, webhook_id: str, limit: PageSize = 100
) -> dict[str, Any]:
    """The delivery log, newest first: state, attempts, the receiver's last status or error."""
    found = control.webhooks.deliveries(principal, webhook_id, limit)
    return {"deliveries": [d.to_public() for d in found]}


@router.post("/v1/webhooks/{webhook_id}/test", status_code=202, responses=_ERRORS)
async def test_webhook(control: ControlDep, principal: PrincipalDep, webhook_id: str) -> dict[str, Any]:
    """Queue a ``test`` delivery at once; follow it in the delivery log."""
    return control.webhooks.send_test(principal, webhook_id).to_public()
