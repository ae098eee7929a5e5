"""Usage intervals and the bill made from them.

An interval is one stretch of one shell *running* at one shape and class, for one tenant and owner:
it opens when the shell starts running and closes when it stops running (paused, stopped, failed,
lost, deleted) or when its shape, tenant or owner change, which splits it. The store opens and
closes intervals in the same transaction as the state change that causes them, so the bill never
depends on polling. Everything here is pure: clipping to a period, splitting by day, grouping, costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .errors import InvalidRequest
from .isolation import Runtime
from .limits import MAX_USD
from .pricing import MIB_PER_GIB, RateCard, money

_MICROSECONDS = Decimal(1_000_000)


class GroupBy(StrEnum):
    SHELL = "shell"
    CLASS = "class"
    DAY = "day"
    PRINCIPAL = "principal"


@dataclass(frozen=True)
class UsageInterval:
    id: int
    shell_id: str
    tenant: str
    owner: str
    runtime: Runtime
    shape: str
    vcpus: Decimal
    memory_mib: int
    started_at: datetime
    ended_at: datetime | None
    """None while the shell runs."""

    def to_public(self) -> dict[str, Any]:
        return {
            "shell": self.shell_id,
            "tenant": self.tenant,
            "owner": self.owner,
            "runtime": self.runtime.value,
            "shape": self.shape,
            "vcpus": str(self.vcpus),
            "memory_mib": self.memory_mib,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Exact seconds (to the microsecond) from ``start`` to ``end``; never negative."""
    delta = end - start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return max(Decimal(0), Decimal(micros) / _MICROSECONDS)


@dataclass(frozen=True)
class Piece:
    """The part of one interval that falls in a period (and, for ``day``, in one day)."""

    interval: UsageInterval
    start: datetime
    end: datetime

    @property
    def seconds(self) -> Decimal:
        return seconds_between(self.start, self.end)


def pieces(
    intervals: Iterable[UsageInterval], start: datetime, end: datetime, now: datetime, *, by_day: bool
) -> Iterator[Piece]:
    """Each interval clipped to ``[start, end)`` (an open one runs until ``now``), cut at midnights
    UTC when ``by_day``."""
    for iv in intervals:
        lo = max(iv.started_at, start)
        hi = min(iv.ended_at or now, end, now)
        while lo < hi:
            cut = hi
            if by_day:
                midnight = datetime.combine(lo.date() + timedelta(days=1), datetime.min.time(), lo.tzinfo)
                cut = min(hi, midnight)
            yield Piece(iv, lo, cut)
            lo = cut


@dataclass
class UsageLine:
    """One row of a usage report."""

    key: str
    seconds: Decimal = Decimal(0)
    vcpu_seconds: Decimal = Decimal(0)
    gib_seconds: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)

    def add(self, piece: Piece, rates: RateCard) -> None:
        iv, seconds = piece.interval, piece.seconds
        self.seconds += seconds
        self.vcpu_seconds += seconds * iv.vcpus
        self.gib_seconds += seconds * Decimal(iv.memory_mib) / MIB_PER_GIB
        self.cost += rates.rates(iv.runtime).cost(seconds, iv.vcpus, iv.memory_mib)

    def to_public(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "seconds": _plain(self.seconds),
            "vcpu_seconds": _plain(self.vcpu_seconds),
            "gib_seconds": _plain(self.gib_seconds),
            "cost_usd": money(self.cost),
        }


def _plain(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.001")))


_KEYS: dict[GroupBy, Callable[[Piece], str]] = {
    GroupBy.SHELL: lambda p: p.interval.shell_id,
    GroupBy.CLASS: lambda p: p.interval.runtime.value,
    GroupBy.DAY: lambda p: p.start.date().isoformat(),
    GroupBy.PRINCIPAL: lambda p: p.interval.owner,
}


def summarize(
    intervals: Iterable[UsageInterval],
    start: datetime,
    end: datetime,
    now: datetime,
    rates: RateCard,
    group_by: GroupBy,
) -> tuple[list[UsageLine], UsageLine]:
    """The lines of a report (sorted by key) and their total. Costs are summed exactly and rounded
    only when shown, so the total is the exact sum of the lines' exact costs."""
    lines: dict[str, UsageLine] = {}
    total = UsageLine("total")
    key = _KEYS[group_by]
    for piece in pieces(intervals, start, end, now, by_day=group_by is GroupBy.DAY):
        k = key(piece)
        lines.setdefault(k, UsageLine(k)).add(piece, rates)
        total.add(piece, rates)
    return [lines[k] for k in sorted(lines)], total


def month_start(at: datetime) -> datetime:
    """Midnight UTC on the first day of ``at``'s month (the free tier and budgets are monthly)."""
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Billing:
    """A tenant's monthly terms: a free allowance in dollars, and a cap on what it pays beyond it
    (None: no cap). The cap is reached when the month's cost reaches ``free_tier + budget``."""

    free_tier: Decimal
    budget: Decimal | None

    def charged(self, cost: Decimal) -> Decimal:
        return max(Decimal(0), cost - self.free_tier)

    def cap_reached(self, cost: Decimal) -> bool:
        return self.budget is not None and cost >= self.free_tier + self.budget

    def to_public(self, cost: Decimal) -> dict[str, Any]:
        return {
            "cost_usd": money(cost),
            "free_tier_usd": money(self.free_tier),
            "charged_usd": money(self.charged(cost)),
            "budget_usd": None if self.budget is None else money(self.budget),
            "cap_reached": self.cap_reached(cost),
        }


def parse_usd(value: object, field: str, *, allow_none: bool) -> Decimal | None:
    """A non-negative amount of dollars from the wire (a number or a decimal string)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(
            f"'{field}' must be an amount of dollars such as 25 or \"2.50\".", {"field": field}
        )
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        amount = Decimal(-1)
    if not amount.is_finite() or amount < 0:
        raise InvalidRequest(f"'{field}' must be zero or a positive amount of dollars.", {"field": field})
    if amount > MAX_USD:
        raise InvalidRequest(f"'{field}' must be at most {MAX_USD} dollars.", {"field": field})
    return amount
