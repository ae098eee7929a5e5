"""Tables of tenancy: tenants, principals, per-shell grants and terminal credentials (API tokens keep
their table in ``tables``). Every schema change also gets an Alembic migration (0004_tenancy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base


class TenantRow(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    quotas: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class PrincipalRow(Base):
    __tablename__ = "principals"

    tenant: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.name"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class GrantRow(Base):
    __tablename__ = "grants"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[int]
    granted_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class TermCredentialRow(Base):
    __tablename__ = "term_credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    shell_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str] = mapped_column(String(128))
    token_id: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    suffix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
