"""The audit trail's value types: who is asking through which door (one per request), and what a
search of the trail may filter on."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import InvalidRequest
from .principal import Principal

DOORS: tuple[str, ...] = ("rest", "cli", "sdk", "mcp", "console", "e2b")
DEFAULT_DOOR = "rest"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def parse_door(value: str | None) -> str:
    if value is None or value == "":
        return DEFAULT_DOOR
    if value not in DOORS:
        raise InvalidRequest(
            f"X-Shells-Door must be one of: {', '.join(DOORS)} (or absent for rest).",
            {"header": "X-Shells-Door"},
        )
    return value


def request_id_from(value: str | None) -> str:
    """The caller's request id if it is a sane token (so it can be correlated), else a fresh one."""
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return secrets.token_hex(8)


@dataclass
class RequestInfo:
    """One request as the audit trail sees it. The door that received it creates it; authentication
    fills in the principal; the store marks it ``recorded`` once an event of this request is written,
    so a request that wrote its own event is not recorded twice."""

    request_id: str
    door: str = DEFAULT_DOOR
    principal: Principal | None = None
    recorded: bool = False
    outcome: str | None = None
    """The error code the request was answered with, if any."""


@dataclass(frozen=True)
class AuditQuery:
    """Filters of ``GET /v1/audit``; every field is optional and they combine with AND."""

    shell: str | None = None
    actor: str | None = None
    action: str | None = None
    door: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def parse_time(value: str | None, field: str) -> datetime | None:
    """ISO 8601 (``2026-01-31T12:00:00Z``); a time without a zone is taken as UTC."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"'{field}' must be an ISO 8601 time such as 2026-01-31T12:00:00Z.", {"field": field}
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
