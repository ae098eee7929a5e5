"""Webhooks: which audit events become which webhook events, how a delivery is signed, when a
failed one is tried again, and which addresses a webhook may never reach. Rules only, no I/O.

A delivery is a POST of a JSON body with three headers: ``Shells-Webhook-Id`` (the delivery, the
same on every attempt, so a receiver can drop duplicates), ``Shells-Webhook-Timestamp`` (Unix
seconds of this attempt) and ``Shells-Webhook-Signature: v1=<hex>``, the HMAC-SHA256 under the
webhook's secret of ``<timestamp>.<body>``. A receiver recomputes it over the raw body and refuses
old timestamps, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .shell import EventRecord

WEBHOOK_EVENTS: tuple[str, ...] = (
    "created",
    "running",
    "paused",
    "resumed",
    "stopped",
    "deleted",
    "lost",
    "failed",
    "budget_reached",
)
TEST_EVENT = "test"
"""The type of the delivery the "send test" action makes (sent whatever the webhook subscribes)."""

ID_HEADER = "Shells-Webhook-Id"
TIMESTAMP_HEADER = "Shells-Webhook-Timestamp"
SIGNATURE_HEADER = "Shells-Webhook-Signature"

RETRY_FOR = timedelta(days=1)
"""A delivery is tried again until it is this old; then it is given up (``failed``)."""
LONGEST_RETRY_S = 3600.0

BUDGET_CAUSE = "budget"
"""``details.cause`` of a pause the budget cap made (a stop for the cap is ``action: budget``)."""

_STATE_EVENTS = {"running", "paused", "stopped", "lost", "failed"}


def webhook_events(event: EventRecord) -> tuple[str, ...]:
    """The webhook events an audit event is, in order: none for those no webhook hears (exec,
    files, the warm pool's own shells, reads); two for a shell taken from the warm pool, which is
    created already running (no separate state change is recorded)."""
    if event.shell_id is None or event.door == "pool":
        return ()
    if event.kind == "create":
        return ("created", "running") if event.details.get("warm") else ("created",)
    if event.kind == "delete":
        return ("deleted",)
    if event.kind not in ("state", "action") or event.outcome not in _STATE_EVENTS:
        return ()
    if event.action == "budget" or event.details.get("cause") == BUDGET_CAUSE:
        return ("budget_reached",)
    if event.outcome == "running" and event.action == "resume":
        return ("resumed",)
    return (event.outcome,)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for one attempt."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def retry_delay_s(attempts: int, first_s: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``first_s`` doubling each
    time, at most an hour."""
    return float(min(first_s * 2.0 ** min(max(attempts - 1, 0), 32), LONGEST_RETRY_S))


def gives_up(created_at: datetime, now: datetime) -> bool:
    return now - created_at >= RETRY_FOR


_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def forbidden_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    own: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network],
) -> str | None:
    """Why a webhook may not be delivered to ``address``, or None. ``own`` holds this host's own
    addresses and the shells' range: a webhook must not reach the server itself or its shells."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address (this server)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    for mine in own:
        if address == mine or (isinstance(mine, ipaddress.IPv4Network) and address in mine):
            return "an address of this server or its shells"
    return None


def sealing_name(webhook_id: str) -> str:
    """The name a webhook's secret is sealed under, beside its tenant (a secret's name cannot hold
    a '/', so a sealed webhook secret never opens as a tenant secret or as another webhook's)."""
    return f"webhook/{webhook_id}"


@dataclass(frozen=True)
class WebhookRecord:
    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    sealed: bytes = field(repr=False)
    """The signing secret, sealed by ``control.secret_box`` under ``sealing_name(id)``: the record
    never holds it in the clear; the dispatcher opens it for each attempt."""
    created_at: datetime
    created_by: str

    def to_public(self, secret: str | None = None) -> dict[str, Any]:
        """The wire form; the secret only once, in the create's answer."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "secret": secret,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    webhook_id: str
    event: str
    shell_id: str | None
    event_id: int | None
    payload: dict[str, Any]
    state: str
    """``pending`` (due at ``next_at``), ``delivered`` or ``failed`` (given up after a day)."""
    attempts: int
    created_at: datetime
    next_at: datetime
    last_status: int | None
    last_error: str

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event": self.event,
            "shell_id": self.shell_id,
            "event_id": self.event_id,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_at": self.next_at.isoformat() if self.state == "pending" else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "payload": self.payload,
        }
