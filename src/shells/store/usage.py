"""Usage intervals in the store: opened and closed inside the transaction that changes a shell, and
read back for bills: the area ``store.usage`` of a ``Store``.

The rule, enforced by ``follow_shell`` on every write of a shell row: a shell that is running (and
not in the warm pool) has exactly one open interval, whose tenant, owner, class and shape are the
shell's; any other shell has none. A state change, a shape change or a pool claim therefore opens,
closes or splits an interval in the same commit, and a crash can never leave one half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Index, Integer, Select, String, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..domain.isolation import Runtime
from ..domain.shapes import SHAPES
from ..domain.states import ShellState
from ..domain.usage import UsageInterval
from .tables import Base, ShellRow

if TYPE_CHECKING:
    from .repository import EventDraft, Store


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


_MILLI = Decimal(1000)
_MICRO_USD = Decimal(1_000_000)


def _billable(row: ShellRow) -> bool:
    return row.state == ShellState.RUNNING.value and not row.pooled


def _matches(interval: UsageIntervalRow, row: ShellRow) -> bool:
    return (interval.tenant, interval.owner, interval.runtime, interval.shape) == (
        row.tenant,
        row.owner,
        row.runtime,
        row.shape,
    )


def _open_intervals(session: Session, shell_id: str) -> Sequence[UsageIntervalRow]:
    q = select(UsageIntervalRow).where(
        UsageIntervalRow.shell_id == shell_id, UsageIntervalRow.ended_at.is_(None)
    )
    return session.scalars(q).all()


def follow_shell(session: Session, row: ShellRow, at: datetime) -> None:
    """Make the shell's open interval agree with ``row`` as of ``at``: close what no longer matches,
    open what is missing. Called in the transaction that writes ``row``."""
    keep = None
    for interval in _open_intervals(session, row.id):
        if keep is None and _billable(row) and _matches(interval, row):
            keep = interval
        else:
            interval.ended_at = max(at, interval.started_at)
    if keep is None and _billable(row):
        shape = SHAPES.get(row.shape)
        session.add(
            UsageIntervalRow(
                shell_id=row.id,
                tenant=row.tenant,
                owner=row.owner,
                runtime=row.runtime,
                shape=row.shape,
                vcpus_milli=int(Decimal(str(shape.vcpus)) * _MILLI) if shape else 0,
                memory_mib=shape.memory_mib if shape else 0,
                started_at=at,
            )
        )


_INTERVAL_COLUMNS = (
    UsageIntervalRow.id,
    UsageIntervalRow.shell_id,
    UsageIntervalRow.tenant,
    UsageIntervalRow.owner,
    UsageIntervalRow.runtime,
    UsageIntervalRow.shape,
    UsageIntervalRow.vcpus_milli,
    UsageIntervalRow.memory_mib,
    UsageIntervalRow.started_at,
    UsageIntervalRow.ended_at,
)
"""Read as plain rows, not ORM objects: a month's bill reads thousands and objects cost 4x."""


def _interval(row: Sequence[Any]) -> UsageInterval:
    iv_id, shell_id, tenant, owner, runtime, shape, vcpus_milli, memory_mib, started_at, ended_at = row
    return UsageInterval(
        id=iv_id,
        shell_id=shell_id,
        tenant=tenant,
        owner=owner,
        runtime=Runtime(runtime),
        shape=shape,
        vcpus=Decimal(vcpus_milli) / _MILLI,
        memory_mib=memory_mib,
        started_at=started_at,
        ended_at=ended_at,
    )


def _usd(micro: int | None) -> Decimal | None:
    return None if micro is None else Decimal(micro) / _MICRO_USD


def _micro(amount: Decimal | None) -> int | None:
    return None if amount is None else int((amount * _MICRO_USD).to_integral_value(rounding="ROUND_HALF_UP"))


@dataclass(frozen=True)
class BillingTerms:
    """What a tenant set for itself; None means the server's default."""

    free_tier: Decimal | None
    budget: Decimal | None


@dataclass(frozen=True)
class UsageRepair:
    """What start-up found: intervals continued, opened for running shells that had none, closed."""

    continued: int
    opened: int
    closed: int


class UsageStore:
    """The usage area of a ``Store`` (``store.usage``): intervals read back for bills, billing terms.
    Writing intervals is ``follow_shell``'s, inside the store's own shell transactions."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def intervals(
        self,
        start: datetime,
        end: datetime,
        *,
        tenant: str | None = None,
        owner: str | None = None,
    ) -> list[UsageInterval]:
        """Intervals that overlap ``[start, end)``, oldest first (open ones included)."""
        with self._store.tx() as s:
            q = select(*_INTERVAL_COLUMNS).where(
                UsageIntervalRow.started_at < end,
                or_(UsageIntervalRow.ended_at.is_(None), UsageIntervalRow.ended_at > start),
            )
            if tenant is not None:
                q = q.where(UsageIntervalRow.tenant == tenant)
            if owner is not None:
                q = q.where(UsageIntervalRow.owner == owner)
            return [_interval(r) for r in s.execute(q.order_by(UsageIntervalRow.id)).all()]

    def billed_tenants(self, since: datetime) -> set[str]:
        """Tenants with an interval open now or since ``since``."""
        with self._store.tx() as s:
            q = select(UsageIntervalRow.tenant).where(
                or_(UsageIntervalRow.ended_at.is_(None), UsageIntervalRow.ended_at > since)
            )
            return set(s.scalars(q.distinct()).all())

    def repair_intervals(self) -> UsageRepair:
        """Start-up: every shell's open interval made to agree with its record as of now. After a
        ``kill -9`` an adopted shell's interval simply continues (it ran all along); one whose
        shell is no longer running is closed now; a running shell with none gets one."""
        now = self._store.clock.now()
        with self._store.tx() as s:
            open_rows = s.scalars(self._open_query()).all()
            before = {r.id for r in open_rows}
            shell_ids = {r.shell_id for r in open_rows} | set(
                s.scalars(
                    select(ShellRow.id).where(
                        ShellRow.state == ShellState.RUNNING.value, ShellRow.pooled.is_(False)
                    )
                ).all()
            )
            for shell_id in shell_ids:
                row = s.get(ShellRow, shell_id)
                if row is None:
                    for interval in _open_intervals(s, shell_id):
                        interval.ended_at = now
                else:
                    follow_shell(s, row, now)
            s.flush()
            after = {r.id for r in s.scalars(self._open_query())}
        return UsageRepair(
            continued=len(before & after), opened=len(after - before), closed=len(before - after)
        )

    @staticmethod
    def _open_query() -> Select[UsageIntervalRow]:
        return select(UsageIntervalRow).where(UsageIntervalRow.ended_at.is_(None))

    def shell_counts(self) -> dict[tuple[str, str], int]:
        """How many shells there are by (state, runtime), deleted and warm-pool ones apart."""
        with self._store.tx() as s:
            q = (
                select(ShellRow.state, ShellRow.runtime, func.count())
                .where(ShellRow.pooled.is_(False), ShellRow.state != ShellState.DELETED.value)
                .group_by(ShellRow.state, ShellRow.runtime)
            )
            return {(state, runtime): int(n) for state, runtime, n in s.execute(q).all()}

    # billing terms --------------------------------------------------------------------------------
    def billing_terms(self, tenant: str) -> BillingTerms:
        with self._store.tx() as s:
            row = s.get(TenantBillingRow, tenant)
            if row is None:
                return BillingTerms(None, None)
            return BillingTerms(_usd(row.free_tier_microusd), _usd(row.budget_microusd))

    def set_billing_terms(self, tenant: str, terms: BillingTerms, draft: EventDraft) -> None:
        now = self._store.clock.now()
        with self._store.tx() as s:
            row = s.get(TenantBillingRow, tenant)
            if row is None:
                row = TenantBillingRow(tenant=tenant)
                s.add(row)
            row.free_tier_microusd = _micro(terms.free_tier)
            row.budget_microusd = _micro(terms.budget)
            row.updated_at = now
            self._store.record_event(s, draft, now)

    def budgeted_tenants(self) -> list[str]:
        """Tenants that set a budget cap."""
        with self._store.tx() as s:
            q = select(TenantBillingRow.tenant).where(TenantBillingRow.budget_microusd.is_not(None))
            return list(s.scalars(q).all())
