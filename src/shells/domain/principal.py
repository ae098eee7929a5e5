"""Who is asking. Every service call takes a Principal; no door has a side entrance."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN_SCOPES: frozenset[str] = frozenset(
    {
        "shells.read",
        "shells.create",
        "shells.act",
        "shells.destroy",
        "shells.exec",
        "shells.files",
        "shells.term",
        "shells.agent.invoke",
        "tenant.admin",
        "platform.admin",
    }
)


@dataclass(frozen=True)
class Principal:
    id: str
    tenant: str
    scopes: frozenset[str]
    token_id: str | None = None

    def has(self, scope: str) -> bool:
        return scope in self.scopes
