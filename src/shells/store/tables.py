"""SQLAlchemy table definitions. Every schema change also gets an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ShellRow(Base):
    __tablename__ = "shells"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    runtime: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(128))
    network: Mapped[dict[str, Any]]
    shape: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64))
    env: Mapped[dict[str, Any]]
    labels: Mapped[dict[str, Any]]
    source_snapshot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pooled: Mapped[bool] = mapped_column(default=False, index=True)
    idle_timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    on_timeout: Mapped[str] = mapped_column(String(8), default="kill")
    auto_resume: Mapped[bool] = mapped_column(default=False)
    node: Mapped[str] = mapped_column(String(64), server_default="local")
    """The node that holds the shell (``Settings.node_name`` of its node agent; ``local`` on one box)."""
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_shell_id_id", "shell_id", "id"), Index("ix_events_target", "target"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    shell_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    principal: Mapped[str] = mapped_column(String(128))
    door: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]]
    target: Mapped[str | None] = mapped_column(String(128), nullable=True, default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), index=True)
    runtime: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    durable_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """When every part was in the object store (None: not yet)."""
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """The blobs holding it there: ``[{"name", "sha256", "size"}]``."""


class TokenRow(Base):
    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
