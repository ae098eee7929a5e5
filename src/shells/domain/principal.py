"""Who is asking. Every service call takes a Principal; no door has a side entrance."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """Every entitlement a token can carry, named once (docs/security.md says what each allows);
    call sites name these, never the strings."""

    READ = "shells.read"
    CREATE = "shells.create"
    ACT = "shells.act"
    DESTROY = "shells.destroy"
    EXEC = "shells.exec"
    FILES = "shells.files"
    TERM = "shells.term"
    AGENT_INVOKE = "shells.agent.invoke"
    TENANT_ADMIN = "tenant.admin"
    PLATFORM_ADMIN = "platform.admin"


ADMIN_SCOPES: frozenset[str] = frozenset(Scope)


@dataclass(frozen=True)
class Principal:
    id: str
    tenant: str
    scopes: frozenset[str]
    token_id: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes
