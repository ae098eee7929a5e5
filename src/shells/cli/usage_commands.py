"""``shells usage`` (a table and a per-day bar chart of cost), ``shells pricing`` and
``shells billing`` (a tenant's month so far, its budget cap and free tier)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from .args import Subparsers, connect
from .output import print_json, table

if TYPE_CHECKING:  # the CLI loads the SDK only to run a command
    from ..sdk import Pricing, UsageLine, UsageReport
    from ..sdk.wire import Unset

GROUPS = ("shell", "class", "day", "principal")
BAR_WIDTH = 40


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.3f}"


def usage_table(report: UsageReport) -> str:
    header = [report.group_by.upper(), "HOURS", "VCPU-HOURS", "GIB-HOURS", "COST USD"]
    rows = [
        [line.key, hours(line.seconds), hours(line.vcpu_seconds), hours(line.gib_seconds), line.cost_usd]
        for line in [*report.lines, report.total]
    ]
    return table(header, rows)


def day_chart(days: Sequence[UsageLine], width: int = BAR_WIDTH) -> str:
    """One line per day: the date, a bar as long as its share of the costliest day, and the cost."""
    top = max((d.cost_usd for d in days), default=Decimal(0))
    lines = []
    for day in days:
        filled = (
            0 if top == 0 else int((day.cost_usd / top * width).to_integral_value(rounding="ROUND_HALF_UP"))
        )
        if day.cost_usd > 0:
            filled = max(filled, 1)  # a day that cost anything shows
        lines.append(f"{day.key}  {'█' * filled}{' ' * (width - filled)}  ${day.cost_usd}")
    return "\n".join(lines)


def cmd_usage(args: argparse.Namespace) -> int:
    window = {"start": args.since, "end": args.until, "tenant": args.tenant}
    with connect() as client:
        if args.csv:
            sys.stdout.write(client.usage_csv(group_by=args.by, **window))
            return 0
        report = client.usage(group_by=args.by, **window)
        days = report if args.by == "day" else client.usage(group_by="day", **window)
    if args.json:
        print_json(report)
        return 0
    print(f"{report.tenant}: {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC")
    print(usage_table(report))
    if days.lines:
        print()
        print(day_chart(days.lines))
    if report.month is not None:
        m = report.month
        cap = "no budget cap" if m.budget_usd is None else f"budget ${m.budget_usd}"
        reached = " (cap reached: shells are halted)" if m.cap_reached else ""
        print(
            f"\nthis month: ${m.cost_usd}, free tier ${m.free_tier_usd}, "
            f"charged ${m.charged_usd}; {cap}{reached}"
        )
    return 0


def pricing_table(pricing: Pricing) -> str:
    classes = list(pricing.classes)
    rows = [
        [s["name"], s["vcpus"], s["memory_mib"], *(s["hour_usd"][c] for c in classes)] for s in pricing.shapes
    ]
    return table(["SHAPE", "VCPUS", "MEMORY MIB", *(f"{c.upper()} $/H" for c in classes)], rows)


def cmd_pricing(args: argparse.Namespace) -> int:
    with connect() as client:
        pricing = client.pricing()
    if args.json:
        print_json(pricing)
        return 0
    print(pricing_table(pricing))
    rates = [[c, r["vcpu_hour_usd"], r["gib_hour_usd"]] for c, r in pricing.classes.items()]
    print()
    print(table(["CLASS", "$ PER VCPU-HOUR", "$ PER GIB-HOUR"], rates))
    print(
        f"\nsnapshots: ${pricing.snapshot_gib_month_usd} per GiB-month; "
        f"free tier ${pricing.free_tier_usd} a month"
    )
    return 0


def _amount(value: str | None, unset_word: str) -> str | Unset | None:
    """A command-line amount: not given (kept), the word that removes it (None), or dollars."""
    from ..sdk.wire import UNSET

    if value is None:
        return UNSET
    return None if value == unset_word else value


def cmd_billing(args: argparse.Namespace) -> int:
    from ..sdk.wire import Unset

    budget, free_tier = _amount(args.budget, "none"), _amount(args.free_tier, "default")
    with connect() as client:
        if isinstance(budget, Unset) and isinstance(free_tier, Unset):
            terms = client.tenants.billing(args.name)
        else:
            terms = client.tenants.set_billing(args.name, budget_usd=budget, free_tier_usd=free_tier)
    if args.json:
        print_json(terms)
        return 0
    budget = "none" if terms.budget_usd is None else f"${terms.budget_usd}"
    print(
        f"{args.name}: this month ${terms.cost_usd}, free tier ${terms.free_tier_usd}, charged "
        f"${terms.charged_usd}, budget {budget}{' (reached)' if terms.cap_reached else ''}"
    )
    return 0


def register(sub: Subparsers) -> None:
    s = sub.add_parser("usage", help="what your shells ran and cost: a table and a per-day chart")
    s.add_argument("--by", choices=GROUPS, default="shell", help="group by (default: shell)")
    s.add_argument(
        "--from", dest="since", default=None, help="ISO 8601 time (default: the 1st of this month)"
    )
    s.add_argument("--to", dest="until", default=None, help="ISO 8601 time (default: now)")
    s.add_argument("--tenant", default=None, help="another tenant (platform admins)")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="print CSV instead")
    out.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_usage)

    s = sub.add_parser("pricing", help="the rates of every isolation class and shape")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_pricing)

    s = sub.add_parser("billing", help="a tenant's month so far; set its budget cap or free tier")
    s.add_argument("name", help="the tenant")
    s.add_argument(
        "--budget", default=None, metavar="USD", help="monthly cap beyond the free tier, or 'none'"
    )
    s.add_argument(
        "--free-tier", default=None, metavar="USD", help="platform admins; 'default' for the server's"
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_billing)
