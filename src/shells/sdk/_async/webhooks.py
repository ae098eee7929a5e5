"""Webhooks of your tenant (``client.webhooks``): callbacks on your shells' lifecycle events."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from ..models import Webhook, WebhookDelivery, from_wire
from .http import AsyncHTTP


class AsyncWebhooks:
    """Register, list and delete webhooks; read their delivery log; send a test (tenant admins)."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(self, url: str, *, events: Sequence[str] = ("*",), secret: str | None = None) -> Webhook:
        """Register ``url`` for ``events`` (``["*"]``: all). The answer holds the signing secret (the
        one given, or a generated one), the only time it is shown.

        Raises:
            InvalidRequest: a malformed URL, an unknown event, a short secret, or a URL that reaches
                this server, its shells or a metadata address.
            PermissionDenied: the token lacks ``tenant.admin``.
            QuotaExceeded: the tenant has 20 webhooks already.
        """
        body = {"url": url, "events": list(events), "secret": secret}
        return from_wire(Webhook, await self._http.call("POST", "/v1/webhooks", body=body))

    async def list(self) -> builtins.list[Webhook]:
        """Your tenant's webhooks (without their secrets)."""
        answer = await self._http.call("GET", "/v1/webhooks")
        return [from_wire(Webhook, w) for w in answer["webhooks"]]

    async def delete(self, webhook_id: str) -> None:
        """Delete a webhook; its pending deliveries are not sent.

        Raises:
            NotFound: there is no such webhook.
        """
        await self._http.call("DELETE", f"/v1/webhooks/{webhook_id}")

    async def deliveries(self, webhook_id: str, limit: int = 100) -> builtins.list[WebhookDelivery]:
        """The delivery log, newest first.

        Raises:
            NotFound: there is no such webhook.
        """
        path = f"/v1/webhooks/{webhook_id}/deliveries"
        answer = await self._http.call("GET", path, params={"limit": str(limit)})
        return [from_wire(WebhookDelivery, d) for d in answer["deliveries"]]

    async def test(self, webhook_id: str) -> WebhookDelivery:
        """Queue a ``test`` delivery now; follow it with :meth:`deliveries`.

        Raises:
            NotFound: there is no such webhook.
        """
        return from_wire(WebhookDelivery, await self._http.call("POST", f"/v1/webhooks/{webhook_id}/test"))
