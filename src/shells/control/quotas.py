"""Per-tenant limits: quotas on what a tenant holds, and the rate of requests each of its tokens may make.

A tenant's limits are the server's defaults (Settings) overridden by what was set for the tenant; they
are cached in memory because authentication reads the rate limit on every request. Quotas count what
the tenant *holds*: every shell that is not deleted (stopped ones included, so starting one again never
fails on quota) with its shape's vCPUs and memory, and every snapshot that is kept.

Checks run in the event loop without an ``await`` between the count and the insert that follows, so two
concurrent creates cannot both take the last slot. Snapshots are taken across an ``await`` (the host
copies the files), so a slot is reserved in memory while one is in flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..domain.errors import BudgetExceeded, QuotaExceeded
from ..domain.shapes import SHAPES, Shape
from ..domain.tenancy import Limits
from ..settings import Settings
from ..store.repository import Store


@dataclass(frozen=True)
class ShellUsage:
    """What a tenant's shells hold (every state but deleted)."""

    shells: int
    vcpus: float
    memory_mib: int


def default_limits(settings: Settings) -> Limits:
    return Limits(
        max_shells=settings.quota_max_shells,
        max_vcpus=settings.quota_max_vcpus,
        max_memory_mib=settings.quota_max_memory_mib,
        max_snapshots=settings.quota_max_snapshots,
        requests_per_s=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
    )


def _exceeded(limit: str, value: float, used: float, fix: str) -> QuotaExceeded:
    shown = int(value) if float(value).is_integer() else value
    return QuotaExceeded(
        f"This would exceed the tenant's quota {limit} = {shown} (in use: {used:g}); {fix}",
        {"limit": limit, "value": shown, "used": used},
    )


class Quotas:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.defaults = default_limits(settings)
        self.store = store
        self._cache: dict[str, Limits] = {}
        self._snapshots_in_flight: Counter[str] = Counter()
        self.check_budget: Callable[[str], None] = lambda _tenant: None
        """Raises BudgetExceeded once the tenant's monthly budget cap is reached (``control.budgets``
        installs it); every check of a new shell runs it first."""

    def limits(self, tenant: str) -> Limits:
        cached = self._cache.get(tenant)
        if cached is None:
            record = self.store.tenancy.get_tenant(tenant)
            cached = self.defaults.with_overrides(record.quotas if record is not None else {})
            self._cache[tenant] = cached
        return cached

    def forget(self, tenant: str) -> None:
        """Drop the cached limits after they changed."""
        self._cache.pop(tenant, None)

    def shell_usage(self, tenant: str) -> ShellUsage:
        counts = self.store.tenancy.shape_counts(tenant)
        known = {SHAPES[name]: n for name, n in counts.items() if name in SHAPES}
        return ShellUsage(
            shells=sum(counts.values()),
            vcpus=sum(shape.vcpus * n for shape, n in known.items()),
            memory_mib=sum(shape.memory_mib * n for shape, n in known.items()),
        )

    def check_shell(self, tenant: str, shape: Shape, count: int = 1) -> None:
        """Raise QuotaExceeded if ``count`` more shells of ``shape`` do not fit the tenant's quotas (or
        BudgetExceeded if the tenant's budget cap is reached)."""
        self.check_budget(tenant)
        limits = self.limits(tenant)
        used = self.shell_usage(tenant)
        fix = "delete shells you no longer need, or ask for a larger quota."
        if used.shells + count > limits.max_shells:
            raise _exceeded("max_shells", limits.max_shells, used.shells, fix)
        if used.vcpus + shape.vcpus * count > limits.max_vcpus:
            raise _exceeded("max_vcpus", limits.max_vcpus, used.vcpus, "use a smaller shape or " + fix)
        if used.memory_mib + shape.memory_mib * count > limits.max_memory_mib:
            raise _exceeded(
                "max_memory_mib", limits.max_memory_mib, used.memory_mib, "use a smaller shape or " + fix
            )

    def fitting(self, tenant: str, shape: Shape, wanted: int) -> tuple[int, QuotaExceeded | None]:
        """How many of ``wanted`` more shells of ``shape`` fit the tenant's quotas, and the quota the
        next one would exceed (None if all fit). BudgetExceeded is raised: a reached cap refuses all."""
        refused: QuotaExceeded | None = None
        for count in range(wanted, 0, -1):
            try:
                self.check_shell(tenant, shape, count)
            except BudgetExceeded:
                raise
            except QuotaExceeded as exc:
                refused = exc
                continue
            return count, refused
        return 0, refused

    @contextmanager
    def snapshot_slot(self, tenant: str) -> Iterator[None]:
        """Hold one snapshot slot while a snapshot is taken, or raise QuotaExceeded."""
        limit = self.limits(tenant).max_snapshots
        held = self.store.tenancy.snapshot_count(tenant) + self._snapshots_in_flight[tenant]
        if held + 1 > limit:
            raise _exceeded("max_snapshots", limit, held, "ask an administrator for a larger quota.")
        self._snapshots_in_flight[tenant] += 1
        try:
            yield
        finally:
            self._snapshots_in_flight[tenant] -= 1
            if not self._snapshots_in_flight[tenant]:
                del self._snapshots_in_flight[tenant]
