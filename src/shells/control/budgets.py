"""Budget caps: when a tenant's month-to-date cost reaches its free tier plus its budget, its running
shells are paused (classes that can pause) or stopped (the others), each with an event that says
why, and creates and starts are refused with ``BudgetExceeded`` until the cap is raised.

A background check every ``Settings.budget_check_s`` only *triggers* the cap; the amount it compares
is the bill itself, computed from usage intervals. So a shell may run up to one check period past
the cap (at most ``budget_check_s`` seconds of its rate), and never is billed for polling.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from ..domain.errors import BudgetExceeded, ShellsError
from ..domain.pricing import money
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..domain.usage import Billing
from ..domain.webhooks import BUDGET_CAUSE
from .context import ControlContext
from .metering import Metering
from .suspend import Suspension

log = logging.getLogger(__name__)


def _why(tenant: str, billing: Billing, cost: Decimal) -> str:
    assert billing.budget is not None
    return (
        f"the budget cap of tenant '{tenant}' is reached: ${money(cost)} this month against a free tier "
        f"of ${money(billing.free_tier)} and a budget of ${money(billing.budget)}; a tenant admin can raise "
        f"it with PUT /v1/tenants/{tenant}/billing"
    )


class Budgets:
    def __init__(self, ctx: ControlContext, metering: Metering, suspension: Suspension) -> None:
        self.ctx = ctx
        self.metering = metering
        self.suspension = suspension

    def check(self, tenant: str) -> None:
        """Raise BudgetExceeded if the tenant's cap is reached (before anything new runs)."""
        billing = self.metering.billing(tenant)
        if billing.budget is None:
            return
        cost = self.metering.month_cost(tenant)
        if billing.cap_reached(cost):
            raise BudgetExceeded(
                "This tenant has reached its monthly budget cap; nothing new may run until a tenant "
                f"admin raises it (PUT /v1/tenants/{tenant}/billing).",
                {
                    "limit": "budget_usd",
                    "value": money(billing.budget),
                    "used": money(billing.charged(cost)),
                    "cost_usd": money(cost),
                },
            )

    async def enforce(self, tenant: str) -> list[ShellRecord]:
        """If the tenant's cap is reached, pause or stop each of its running shells; return them."""
        billing = self.metering.billing(tenant)
        cost = self.metering.month_cost(tenant)
        if not billing.cap_reached(cost):
            return []
        reason = _why(tenant, billing, cost)
        halted = []
        for shell in self.ctx.store.list_shells(tenant):
            if shell.state is ShellState.RUNNING:
                try:
                    halted.append(await self._halt(shell.id, reason))
                except ShellsError as exc:
                    log.warning("could not halt shell %s at the budget cap: %s", shell.id, exc.message)
        return [s for s in halted if s is not None]

    async def _halt(self, shell_id: str, reason: str) -> ShellRecord | None:
        return await self.suspension.halt(shell_id, reason, BUDGET_CAUSE)

    async def check_all(self) -> None:
        """One pass over every tenant that set a budget."""
        for tenant in self.ctx.store.usage.budgeted_tenants():
            await self.enforce(tenant)

    # the background check -------------------------------------------------------------------------
    def start(self) -> None:
        self.ctx.background.every(
            "the budget check", self.ctx.settings.budget_check_s, self.check_all, singleton=True
        )
