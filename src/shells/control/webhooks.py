"""Webhooks: a tenant's callbacks on its shells' lifecycle, and the dispatcher that delivers them.

The audit trail is the source: every state change already writes one event in the same transaction
(see ``feed``), so the dispatcher reads each webhook's tenant's events past the webhook's cursor,
turns those it subscribes to into rows of an outbox (``webhook_deliveries``) and moves the cursor,
in one transaction. Deliveries are then attempted from the outbox: per webhook and shell only the
oldest pending one (a shell's events arrive in order), again after an exponential back-off when the
receiver fails, until a day has passed. Everything is in the store, so a server restart (or a
receiver that is down) loses nothing; an attempt interrupted by a crash is simply made again, which
the delivery id in the headers lets a receiver recognise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..domain.access import TENANT_ADMIN
from ..domain.errors import InvalidRequest, QuotaExceeded, RuntimeFailure, WebhookNotFound
from ..domain.ids import new_id
from ..domain.limits import (
    MAX_DELIVERY_LOG,
    MAX_WEBHOOKS_PER_TENANT,
    WEBHOOK_CONCURRENCY,
    WEBHOOK_CONNECT_TIMEOUT_S,
    WEBHOOK_SECRET_CHARS,
    WEBHOOK_TIMEOUT_S,
)
from ..domain.principal import Principal
from ..domain.shell import EventRecord
from ..domain.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TEST_EVENT,
    TIMESTAMP_HEADER,
    WEBHOOK_EVENTS,
    DeliveryRecord,
    WebhookRecord,
    gives_up,
    retry_delay_s,
    sealing_name,
    sign,
    webhook_events,
)
from ..store.webhooks import NewDelivery, WebhookStore
from .auth import require
from .context import ControlContext
from .secret_box import SecretBox
from .webhook_target import OwnAddresses, TargetRefused, check_url, resolve

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often the dispatcher looks for new events and due deliveries (a test delivery wakes it)."""
SETTLE_S = 1.0
"""Events younger than this wait for the next pass: an event id taken by a transaction that has
not committed yet must not be skipped by a cursor that moved past it."""
PAGE = 500


class Webhooks:
    def __init__(self, ctx: ControlContext, own: OwnAddresses, box: SecretBox) -> None:
        self.ctx = ctx
        self.box = box
        self.records = WebhookStore(ctx.store)
        self.own = own
        self._kick = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    # the use cases --------------------------------------------------------------------------------
    async def create(
        self, principal: Principal, url: str, events: Sequence[str], secret: str | None
    ) -> dict[str, Any]:
        """Register a webhook; the answer holds its secret, the only time it is shown."""
        require(principal, TENANT_ADMIN)
        check_url(url)
        names = _check_events(events)
        if secret is None:
            secret = secrets.token_urlsafe(32)
        low, high = WEBHOOK_SECRET_CHARS
        if not low <= len(secret) <= high:
            raise InvalidRequest(
                f"'secret' must be {low} to {high} characters (or left out for a generated one).",
                {"field": "secret"},
            )
        try:
            await resolve(url, self.own)
        except TargetRefused as exc:
            raise InvalidRequest(
                f"'url' may not be used for a webhook: {exc}. Use an address outside this server.",
                {"field": "url", "reason": str(exc)},
            ) from None
        if self.records.count(principal.tenant) >= MAX_WEBHOOKS_PER_TENANT:
            raise QuotaExceeded(
                f"A tenant may have at most {MAX_WEBHOOKS_PER_TENANT} webhooks; delete one first.",
                {"limit": "webhooks", "value": MAX_WEBHOOKS_PER_TENANT},
            )
        webhook_id = new_id("wh")
        rec = WebhookRecord(
            id=webhook_id,
            tenant=principal.tenant,
            url=url,
            events=names,
            sealed=self.box.seal(principal.tenant, sealing_name(webhook_id), secret),
            created_at=datetime.now(UTC),
            created_by=principal.id,
        )
        self.records.add(rec)
        return rec.to_public(secret)

    def all(self, principal: Principal) -> list[WebhookRecord]:
        require(principal, TENANT_ADMIN)
        return self.records.all(principal.tenant)

    def get(self, principal: Principal, webhook_id: str) -> WebhookRecord:
        require(principal, TENANT_ADMIN)
        rec = self.records.get(principal.tenant, webhook_id)
        if rec is None:
            raise WebhookNotFound(f"Webhook '{webhook_id}' does not exist.", {"webhook": webhook_id})
        return rec

    def delete(self, principal: Principal, webhook_id: str) -> None:
        """The webhook and its log go; pending deliveries are not sent."""
        self.records.remove(self.get(principal, webhook_id).id)

    def deliveries(self, principal: Principal, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        return self.records.deliveries(
            self.get(principal, webhook_id).id, max(1, min(limit, MAX_DELIVERY_LOG))
        )

    def send_test(self, principal: Principal, webhook_id: str) -> DeliveryRecord:
        """Queue a ``test`` delivery now (whatever the webhook subscribes to); the log shows it."""
        rec = self.get(principal, webhook_id)
        now = datetime.now(UTC)
        payload = {"type": TEST_EVENT, "webhook_id": rec.id, "tenant": rec.tenant, "at": now.isoformat()}
        self.records.enqueue(rec.id, 0, [NewDelivery(TEST_EVENT, payload, None, None)], now)
        self._kick.set()
        return self.records.deliveries(rec.id, 1)[0]

    # the dispatcher -------------------------------------------------------------------------------
    def start(self) -> None:
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(WEBHOOK_TIMEOUT_S, connect=WEBHOOK_CONNECT_TIMEOUT_S),
        )
        self.ctx.background.run("the webhook dispatcher", self._run)

    async def stop(self) -> None:
        """End the deliveries in flight (each is tried again at the next start); the dispatcher
        loop itself belongs to the background owner, stopped before this."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        """Collect and deliver, on the replica that runs the singleton duties only
        (``Background.leader``): two replicas would each deliver every due delivery."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._kick.wait()
            self._kick.clear()
            if not self.ctx.background.leader():
                continue
            try:
                self.run_pass()
            except Exception:
                log.exception("the webhook dispatcher failed a pass; it runs again in %s s", POLL_S)

    def run_pass(self) -> None:
        """One pass: collect, then dispatch. One cheap query when no webhook exists anywhere (the
        usual case), where a pass read the webhooks twice, their cursors and the due deliveries;
        read each pass, so a webhook made on another replica is seen at the next one."""
        if not self.records.any_exist():
            return
        self.collect()
        self.dispatch()

    def collect(self, now: datetime | None = None) -> int:
        """Turn new events into deliveries for every webhook; returns how many were queued."""
        now = now or datetime.now(UTC)
        settled = now - timedelta(seconds=SETTLE_S)
        queued = 0
        cursors = self.records.cursors()
        for hook in self.records.all(None):
            cursor = cursors.get(hook.id, 0)
            events = self.ctx.store.list_events(tenant=hook.tenant, shell_id=None, after=cursor, limit=PAGE)
            items: list[NewDelivery] = []
            for event in events:
                if event.at > settled:
                    break
                cursor = event.id
                for name in webhook_events(event):
                    if name in hook.events:
                        items.append(NewDelivery(name, self._payload(name, event), event.shell_id, event.id))
            if cursor != cursors.get(hook.id, 0):
                self.records.enqueue(hook.id, cursor, items, now)
                queued += len(items)
        return queued

    def _payload(self, name: str, event: EventRecord) -> dict[str, Any]:
        shell = self.ctx.store.get_shell(event.shell_id) if event.shell_id else None
        return {
            "type": name,
            "tenant": event.tenant,
            "at": event.at.isoformat(),
            "shell_id": event.shell_id,
            "shell": self.ctx.public(shell) if shell is not None else None,
            "event": event.to_public(),
        }

    def dispatch(self) -> None:
        """Start an attempt for each due delivery not already in flight."""
        room = WEBHOOK_CONCURRENCY - len(self._inflight)
        if room <= 0:
            return
        due = [
            d
            for d in self.records.due(datetime.now(UTC), WEBHOOK_CONCURRENCY * 2)
            if d.id not in self._inflight
        ]
        hooks = {h.id: h for h in self.records.all(None)}
        for delivery in due[:room]:
            hook = hooks.get(delivery.webhook_id)
            if hook is None:
                continue
            task = asyncio.get_running_loop().create_task(self._attempt(hook, delivery))
            self._inflight[delivery.id] = task
            task.add_done_callback(self._done(delivery.id))

    def _done(self, delivery_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._inflight.pop(delivery_id, None)

        return forget

    async def _attempt(self, hook: WebhookRecord, delivery: DeliveryRecord) -> None:
        status: int | None = None
        error = ""
        try:
            status = await self._post(hook, delivery)
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except TargetRefused as exc:
            error = f"refused: {exc}"
        except RuntimeFailure as exc:  # the sealed secret does not open: the key file was replaced
            error = exc.message
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        now = datetime.now(UTC)
        attempts = delivery.attempts + 1
        if not error:
            state, next_at = "delivered", now
        elif gives_up(delivery.created_at, now):
            state, next_at = "failed", now
        else:
            delay = retry_delay_s(attempts, self.ctx.settings.webhook_first_retry_s)
            state, next_at = "pending", now + timedelta(seconds=delay)
        self.records.finish(delivery.id, state, attempts, next_at, status, error, MAX_DELIVERY_LOG)
        if state == "delivered":
            self._kick.set()  # the shell's next event may go now

    async def _post(self, hook: WebhookRecord, delivery: DeliveryRecord) -> int:
        assert self._client is not None, "start() first"
        target = await resolve(hook.url, self.own)  # checked again: the name may point elsewhere now
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        secret = self.box.open(hook.tenant, sealing_name(hook.id), hook.sealed)
        stamp = int(time.time())
        headers = {
            "Host": target.host,
            "Content-Type": "application/json",
            "User-Agent": "Shells-Webhooks",
            ID_HEADER: str(delivery.id),
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(secret, stamp, body),
        }
        extensions = {"sni_hostname": target.server_name} if target.server_name else {}
        async with asyncio.timeout(WEBHOOK_CONNECT_TIMEOUT_S + WEBHOOK_TIMEOUT_S):
            request = self._client.build_request(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            )
            response = await self._client.send(request, stream=True)
            await response.aclose()  # the answer's body is not wanted: never read, never stored
        return response.status_code


def _check_events(events: object) -> tuple[str, ...]:
    if not isinstance(events, list | tuple) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidRequest(
            f"'events' must be a non-empty list of: {', '.join(WEBHOOK_EVENTS)} (or [\"*\"] for all).",
            {"field": "events"},
        )
    if list(events) == ["*"]:
        return WEBHOOK_EVENTS
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown:
        raise InvalidRequest(
            f"Unknown event(s) {', '.join(unknown)}. Known events: {', '.join(WEBHOOK_EVENTS)}.",
            {"field": "events"},
        )
    return tuple(e for e in WEBHOOK_EVENTS if e in events)
