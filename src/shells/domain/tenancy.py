"""Tenants, principals, API tokens, per-shell grants and terminal credentials: the records and their
pure rules (names, limits, masking). Secrets never appear in a record; only their hashes are stored."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from .access import Role
from .errors import InvalidRequest
from .limits import MAX_API_INT

DEFAULT_TENANT = "default"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
PRINCIPAL_KINDS = ("person", "service")


def parse_tenant_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidRequest(
            "'name' must be 1-63 lowercase letters, digits or '-', starting with a letter or digit.",
            {"field": "name"},
        )
    return value


def parse_principal_name(value: object, field: str = "principal") -> str:
    if not isinstance(value, str) or not _PRINCIPAL.fullmatch(value):
        raise InvalidRequest(
            f"'{field}' must be 1-128 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or a digit.",
            {"field": field},
        )
    return value


@dataclass(frozen=True)
class Limits:
    """What one tenant may hold (quotas) and how fast each of its tokens may call (rate limit)."""

    max_shells: int
    max_vcpus: float
    max_memory_mib: int
    max_snapshots: int
    requests_per_s: float
    burst: int

    def with_overrides(self, overrides: dict[str, Any]) -> Limits:
        return replace(self, **overrides)

    def to_public(self) -> dict[str, Any]:
        return asdict(self)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Limits))


def parse_limit_overrides(value: object) -> dict[str, float | int]:
    """``{"max_shells": 5, …}``: known names, positive numbers (whole numbers where counted)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'quotas' must be an object such as {\"max_shells\": 10}.", {"field": "quotas"})
    out: dict[str, float | int] = {}
    for name, number in value.items():
        if name not in LIMIT_NAMES:
            raise InvalidRequest(
                f"Unknown quota '{name}'. Known quotas: {', '.join(LIMIT_NAMES)}.", {"field": "quotas"}
            )
        whole = name not in ("max_vcpus", "requests_per_s")
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not 0 < number <= MAX_API_INT
            or (whole and not float(number).is_integer())
        ):
            kind = "a positive whole number" if whole else "a positive number"
            raise InvalidRequest(f"Quota '{name}' must be {kind}.", {"field": f"quotas.{name}"})
        out[name] = int(number) if whole else float(number)
    return out


@dataclass(frozen=True)
class TenantRecord:
    name: str
    quotas: dict[str, float | int]
    """Only the limits set for this tenant; the rest come from the server's settings."""
    created_at: datetime


@dataclass(frozen=True)
class PrincipalRecord:
    tenant: str
    name: str
    kind: str
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "created_at": self.created_at.isoformat()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class TokenRecord:
    id: str
    tenant: str
    principal: str
    prefix: str
    scopes: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "principal": self.principal,
            "prefix": self.prefix,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


@dataclass(frozen=True)
class GrantRecord:
    shell_id: str
    tenant: str
    principal: str
    role: Role
    granted_by: str
    created_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "shell_id": self.shell_id,
            "principal": self.principal,
            "role": self.role.label,
            "granted_by": self.granted_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class TermCredentialRecord:
    """A terminal credential: bound to one shell and one principal, minted through one API token."""

    id: str
    tenant: str
    shell_id: str
    principal: str
    token_id: str
    suffix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    @property
    def masked(self) -> str:
        return f"term_…{self.suffix}"

    def to_public(self, *, in_use: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "shell_id": self.shell_id,
            "principal": self.principal,
            "token": self.masked,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": _iso(self.revoked_at),
            "in_use": in_use,
        }
