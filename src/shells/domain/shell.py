"""The shell record and the other records the control plane keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .durable import StoredPart
from .isolation import Language, Runtime
from .network import NetworkAccess
from .states import ShellState


@dataclass
class ShellRecord:
    id: str
    tenant: str
    owner: str
    name: str
    state: ShellState
    runtime: Runtime
    language: Language
    template: str
    network: NetworkAccess
    shape: str
    region: str
    created_at: datetime
    updated_at: datetime
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    state_reason: str = ""
    source_snapshot: str | None = None
    pooled: bool = False
    idle_timeout_s: int | None = None
    """Seconds without exec, terminal or port traffic after which the shell pauses itself; None never."""
    expires_at: datetime | None = None
    """The hard time-to-live: when the shell ends whatever it is doing (None: never). Set with
    ``timeout_s`` at create and moved by ``set_timeout``; see ``on_timeout``."""
    on_timeout: str = "kill"
    """What the time-to-live does: ``kill`` (delete the shell) or ``pause`` (pause it, or stop it
    keeping its files where the class cannot pause)."""
    auto_resume: bool = False
    """Whether a request to one of its exposed ports resumes it when it is paused (wake on request)."""
    node: str = "local"
    """The node that holds the shell; every call for it goes there (``shells.node``)."""

    def to_public(self) -> dict[str, Any]:
        """The wire form every door returns.

        Environment values are never shown back, only their names: whoever may read a shell (a
        viewer granted one shell, a read-only token) must not learn the secrets it was created with.
        """
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "state_reason": self.state_reason,
            "language": self.language.value,
            "runtime": self.runtime.value,
            "network": self.network.to_dict(),
            "shape": self.shape,
            "template": self.template,
            "snapshot": self.source_snapshot,
            "region": self.region,
            "node": self.node,
            "tenant": self.tenant,
            "owner": self.owner,
            "env_names": sorted(self.env),
            "labels": dict(self.labels),
            "idle_timeout_s": self.idle_timeout_s,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "on_timeout": self.on_timeout,
            "auto_resume": self.auto_resume,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class EventRecord:
    """One line of the audit trail: who did what to which shell, through which door, and how it ended."""

    id: int
    at: datetime
    tenant: str
    shell_id: str | None
    principal: str
    door: str
    kind: str  # "action", "state", "exec", "files", "create", "delete", "term", "admin", "read", "request"
    action: str
    outcome: str  # "ok", a state name for kind="state", or the error code
    message: str
    details: dict[str, Any]
    target: str | None = None
    """What the request was about (a shell, token, tenant, credential id), even when it failed."""
    request_id: str | None = None

    @property
    def destructive(self) -> bool:
        return self.kind == "delete" or bool(self.details.get("destructive"))

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "shell_id": self.shell_id,
            "principal": self.principal,
            "door": self.door,
            "kind": self.kind,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "destructive": self.destructive,
            "request_id": self.request_id,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class SnapshotRecord:
    id: str
    tenant: str
    shell_id: str
    runtime: Runtime
    template: str
    language: Language
    created_at: datetime
    name: str = ""
    durable_at: datetime | None = None
    """When the object store held all of it (docs/storage.md); None while the upload runs."""
    parts: tuple[StoredPart, ...] = ()

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shell_id": self.shell_id,
            "runtime": self.runtime.value,
            "template": self.template,
            "language": self.language.value,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "durable": self.durable_at is not None,
            "durable_at": None if self.durable_at is None else self.durable_at.isoformat(),
            "size_bytes": sum(p.size for p in self.parts) if self.parts else None,
        }
