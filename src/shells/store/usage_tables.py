"""Tables of metering: usage intervals and each tenant's billing terms (migration 0006_usage)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .tables import Base


class UsageIntervalRow(Base):
    """One stretch of one shell running at one shape; ``ended_at`` is NULL while it runs."""

    __tablename__ = "usage_intervals"
    __table_args__ = (
        Index("ix_usage_intervals_tenant_started", "tenant", "started_at"),
        Index("ix_usage_intervals_open", "shell_id", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shell_id: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(128))
    runtime: Mapped[str] = mapped_column(String(16))
    shape: Mapped[str] = mapped_column(String(32))
    vcpus_milli: Mapped[int] = mapped_column(Integer)
    """vCPUs times 1000, so fractional shapes stay exact without a decimal column (SQLite has none)."""
    memory_mib: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class TenantBillingRow(Base):
    """A tenant's own billing terms; a missing row or NULL uses the server's defaults."""

    __tablename__ = "tenant_billing"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    free_tier_microusd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_microusd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime]
