"""Usage, pricing and billing terms: the bill is computed from usage intervals (``store.usage``), never
from polling, with the rates of ``Settings`` (docs/pricing.md).

Who sees what: every principal with ``shells.read`` sees the usage of the shells it owns; tenant
admins see their whole tenant and its month-to-date bill; platform admins may name any tenant.
Tenant admins set their own budget cap; only platform admins set a tenant's free tier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.access import TENANT_ADMIN
from ..domain.audit import parse_time
from ..domain.errors import InvalidRequest, PermissionDenied, TenantNotFound
from ..domain.isolation import Runtime, parse_enum
from ..domain.pricing import RateCard, money, rate
from ..domain.principal import Principal, Scope
from ..domain.shapes import SHAPES
from ..domain.usage import Billing, GroupBy, UsageLine, month_start, parse_usd, summarize
from ..settings import Settings
from ..store.usage import BillingTerms
from .auth import is_platform_admin, require
from .context import ControlContext
from .requests import reject_unknown

RuntimeMatrix = Callable[[], list[dict[str, Any]]]
"""The language x class rows (available, version) that pricing shows next to the rates."""
VolumeHours = Callable[[str | None, datetime, datetime], dict[str, Decimal]]
"""Volume storage in GiB-hours per tenant over a window (``control.storage``)."""


def rate_card(settings: Settings) -> RateCard:
    return RateCard.from_reference(
        vcpu_hour=settings.rate_vcpu_hour,
        gib_hour=settings.rate_gib_hour,
        container_factor=settings.rate_container_factor,
        wasm_factor=settings.rate_wasm_factor,
        snapshot_gib_month=settings.rate_snapshot_gib_month,
    )


@dataclass(frozen=True)
class UsageReport:
    tenant: str
    start: datetime
    end: datetime
    group_by: GroupBy
    owner: str | None
    """Set when the report covers only the caller's own shells."""
    lines: list[UsageLine]
    total: UsageLine
    month: dict[str, Any] | None
    """The tenant's month-to-date bill (for tenant admins)."""
    volume_gib_hours: Decimal | None = None
    """The tenant's volume storage over the window (for tenant admins: volumes are the tenant's)."""

    def to_public(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "group_by": self.group_by.value,
            "owner": self.owner,
            "lines": [line.to_public() for line in self.lines],
            "total": self.total.to_public(),
            "month": self.month,
            "volume_gib_hours": None
            if self.volume_gib_hours is None
            else str(self.volume_gib_hours.quantize(Decimal("0.0001"))),
        }


class Metering:
    def __init__(
        self, ctx: ControlContext, matrix: RuntimeMatrix, volumes: VolumeHours | None = None
    ) -> None:
        self.ctx = ctx
        self._volumes = volumes
        self.rates = rate_card(ctx.settings)
        self._matrix = matrix

    # the bill -------------------------------------------------------------------------------------
    def month_cost(self, tenant: str, now: datetime | None = None) -> Decimal:
        """What the tenant's shells cost from the first of this month (UTC) to ``now``."""
        now = now or self.ctx.store.clock.now()
        start = month_start(now)
        _, total = summarize(
            self.ctx.store.usage.intervals(start, now, tenant=tenant),
            start,
            now,
            now,
            self.rates,
            GroupBy.CLASS,
        )
        return total.cost

    def billing(self, tenant: str) -> Billing:
        terms = self.ctx.store.usage.billing_terms(tenant)
        free = terms.free_tier if terms.free_tier is not None else self.ctx.settings.free_tier_usd
        return Billing(free_tier=free, budget=terms.budget)

    def usage(
        self,
        principal: Principal,
        *,
        start: str | None = None,
        end: str | None = None,
        group_by: str | None = None,
        tenant: str | None = None,
    ) -> UsageReport:
        require(principal, Scope.READ)
        name = self._tenant(principal, tenant)
        now = self.ctx.store.clock.now()
        lo = parse_time(start, "from") or month_start(now)
        hi = parse_time(end, "to") or now
        if hi <= lo:
            raise InvalidRequest("'to' must be later than 'from'.", {"field": "to"})
        grouping = parse_enum(GroupBy, group_by or GroupBy.SHELL.value, "group_by")
        whole_tenant = is_platform_admin(principal) or principal.has(TENANT_ADMIN)
        owner = None if whole_tenant else principal.id
        intervals = self.ctx.store.usage.intervals(lo, hi, tenant=name, owner=owner)
        lines, total = summarize(intervals, lo, hi, now, self.rates, grouping)
        month = None
        volume_hours = None
        if whole_tenant and self._volumes is not None:
            volume_hours = self._volumes(name, lo, hi).get(name, Decimal(0))
        if whole_tenant:
            month = self.billing(name).to_public(self.month_cost(name, now)) | {
                "from": month_start(now).isoformat()
            }
        return UsageReport(name, lo, hi, grouping, owner, lines, total, month, volume_hours)

    def _tenant(self, principal: Principal, tenant: str | None) -> str:
        name = tenant or principal.tenant
        if name != principal.tenant and not is_platform_admin(principal):
            raise TenantNotFound(f"Tenant '{name}' does not exist.", {"tenant": name})
        if self.ctx.store.tenancy.get_tenant(name) is None and name != principal.tenant:
            raise TenantNotFound(f"Tenant '{name}' does not exist.", {"tenant": name})
        return name

    # billing terms --------------------------------------------------------------------------------
    def get_terms(self, principal: Principal, tenant: str) -> dict[str, Any]:
        name = self._admin_of(principal, tenant)
        return self.billing(name).to_public(self.month_cost(name)) | {"tenant": name}

    def set_terms(self, principal: Principal, tenant: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"budget_usd": 25 | null, "free_tier_usd": 5 | null}``: a field not sent is kept; null
        removes the cap, or returns the free tier to the server's default."""
        name = self._admin_of(principal, tenant)
        reject_unknown(body, {"budget_usd", "free_tier_usd"})
        current = self.ctx.store.usage.billing_terms(name)
        budget = current.budget
        free = current.free_tier
        if "budget_usd" in body:
            budget = parse_usd(body["budget_usd"], "budget_usd", allow_none=True)
        if "free_tier_usd" in body:
            if not is_platform_admin(principal):
                raise PermissionDenied(
                    "Only a platform admin sets a tenant's free tier; tenant admins set its budget_usd.",
                    {"scope": Scope.PLATFORM_ADMIN},
                )
            free = parse_usd(body["free_tier_usd"], "free_tier_usd", allow_none=True)
        terms = BillingTerms(free_tier=free, budget=budget)
        draft = self.ctx.draft(
            principal,
            None,
            kind="admin",
            action="tenant.billing",
            tenant=name,
            target=name,
            details={
                "budget_usd": None if budget is None else money(budget),
                "free_tier_usd": None if free is None else money(free),
            },
        )
        self.ctx.store.usage.set_billing_terms(name, terms, draft)
        return self.get_terms(principal, name)

    def _admin_of(self, principal: Principal, tenant: str) -> str:
        """The tenant, if the caller administers it (another tenant is answered as missing)."""
        if is_platform_admin(principal):
            if self.ctx.store.tenancy.get_tenant(tenant) is None:
                raise TenantNotFound(f"Tenant '{tenant}' does not exist.", {"tenant": tenant})
            return tenant
        if tenant != principal.tenant:
            raise TenantNotFound(f"Tenant '{tenant}' does not exist.", {"tenant": tenant})
        require(principal, TENANT_ADMIN)
        return tenant

    # pricing --------------------------------------------------------------------------------------
    def pricing(self, principal: Principal) -> dict[str, Any]:
        """The runtime matrix (language x class) with every class's rates and each shape's hourly price."""
        require(principal, Scope.READ)
        hour = Decimal(3600)
        return {
            "currency": "USD",
            "billing": "per second of running, at the shape's vCPUs and memory; nothing while paused "
            "or stopped",
            "classes": {r.value: self.rates.rates(r).to_public() for r in Runtime},
            "snapshot_gib_month_usd": rate(self.rates.snapshot_gib_month),
            "free_tier_usd": money(self.ctx.settings.free_tier_usd),
            "shapes": [
                {
                    "name": shape.name,
                    "vcpus": shape.vcpus,
                    "memory_mib": shape.memory_mib,
                    "hour_usd": {
                        r.value: money(
                            self.rates.rates(r).cost(hour, Decimal(str(shape.vcpus)), shape.memory_mib)
                        )
                        for r in Runtime
                    },
                }
                for shape in SHAPES.values()
            ],
            "runtimes": self._matrix(),
        }
