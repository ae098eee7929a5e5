"""Metering against a real SQLite store driven by a clock the test controls: intervals follow state
changes exactly, a shape change splits one, start-up repairs them, and a simulated week across the
three classes costs exactly what was computed by hand (docs/pricing.md shows the same sums)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete

from shells.control.budgets import Budgets
from shells.control.context import ControlContext
from shells.control.metering import Metering, rate_card
from shells.control.suspend import Suspension
from shells.domain.errors import BudgetExceeded, InvalidRequest, PermissionDenied, TenantNotFound
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.principal import ADMIN_SCOPES, Principal
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.domain.tenancy import TenantRecord
from shells.domain.usage import GroupBy, UsageLine, summarize
from shells.settings import Settings
from shells.store.repository import EventDraft, Store
from shells.store.usage import UsageIntervalRow
from tests.support.clock import ManualClock

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
ADMIN = Principal("admin", "default", ADMIN_SCOPES)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY)


@pytest.fixture
def store(migrated_url: str, clock: ManualClock) -> Iterator[Store]:
    s = Store(migrated_url, clock=clock)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def ctx(store: Store, tmp_path: Path) -> ControlContext:
    return ControlContext(Settings(data_dir=tmp_path), store, {})


@pytest.fixture
def metering(ctx: ControlContext) -> Metering:
    return Metering(ctx, list)


def draft(shell_id: str) -> EventDraft:
    return EventDraft(
        tenant="default", shell_id=shell_id, principal="test", door="test", kind="state", action="t"
    )


def new_shell(
    store: Store, shell_id: str, runtime: Runtime, shape: str, *, owner: str = "alice", pooled: bool = False
) -> ShellRecord:
    now = store.clock.now()
    rec = ShellRecord(
        id=shell_id,
        tenant="" if pooled else "default",
        owner=owner,
        name=shell_id,
        state=ShellState.CREATING,
        runtime=runtime,
        language=Language.PYTHON,
        template="python:1",
        network=NetworkAccess(NetworkMode.SEALED),
        shape=shape,
        region="local",
        created_at=now,
        updated_at=now,
        pooled=pooled,
    )
    store.add_shell(rec)
    return rec


def to(store: Store, shell_id: str, state: ShellState) -> None:
    store.change_state(shell_id, state, "", draft(shell_id))


def reshape(store: Store, shell_id: str, shape: str) -> None:
    rec = store.get_shell(shell_id)
    assert rec is not None
    rec.shape = shape
    store.save_shell(rec)


RATES = rate_card(Settings())
MONTH = (MONDAY, MONDAY + timedelta(days=28))


def report(store: Store, by: GroupBy, period: tuple[datetime, datetime] = MONTH) -> dict[str, UsageLine]:
    """The report's lines by key, and its total under ``"total"``."""
    start, end = period
    lines, total = summarize(store.usage.intervals(start, end), start, end, store.clock.now(), RATES, by)
    return {line.key: line for line in lines} | {"total": total}


# intervals follow state changes -----------------------------------------------------------------------


def test_running_90_paused_60_running_30_is_billed_120_seconds(store: Store, clock: ManualClock) -> None:
    new_shell(store, "sh_a", Runtime.MICROVM, "s-2vcpu-2gb")
    clock.advance(5)  # creating is not billed
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(90)
    to(store, "sh_a", ShellState.PAUSED)
    clock.advance(60)
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(30)
    to(store, "sh_a", ShellState.STOPPED)
    clock.advance(1000)  # stopped is not billed either
    line = report(store, GroupBy.SHELL)["sh_a"]
    assert line.seconds == 120
    assert line.vcpu_seconds == 240
    assert line.gib_seconds == 240
    assert line.cost == Decimal("0.1332") * 120 / 3600  # microvm, 2 vCPU + 2 GiB per hour


def test_an_open_interval_is_billed_up_to_now(store: Store, clock: ManualClock) -> None:
    new_shell(store, "sh_a", Runtime.CONTAINER, "s-1vcpu-512mb")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(42.5)
    assert report(store, GroupBy.SHELL)["sh_a"].seconds == Decimal("42.5")
    clock.advance(10)
    assert report(store, GroupBy.SHELL)["sh_a"].seconds == Decimal("52.5")


@pytest.mark.parametrize("end", [ShellState.FAILED, ShellState.LOST, ShellState.DELETED])
def test_every_way_out_of_running_closes_the_interval(
    store: Store, clock: ManualClock, end: ShellState
) -> None:
    new_shell(store, "sh_a", Runtime.CONTAINER, "s-1vcpu-512mb")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(7)
    to(store, "sh_a", end)
    clock.advance(100)
    assert report(store, GroupBy.SHELL)["sh_a"].seconds == 7


def test_a_shape_change_mid_run_splits_the_interval(store: Store, clock: ManualClock) -> None:
    new_shell(store, "sh_a", Runtime.MICROVM, "s-4vcpu-4gb")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(600)
    reshape(store, "sh_a", "s-1vcpu-512mb")
    clock.advance(300)
    to(store, "sh_a", ShellState.STOPPED)
    intervals = store.usage.intervals(*MONTH)
    assert [(iv.shape, iv.vcpus, iv.memory_mib) for iv in intervals] == [
        ("s-4vcpu-4gb", Decimal(4), 4096),
        ("s-1vcpu-512mb", Decimal(1), 512),
    ]
    assert intervals[0].ended_at == intervals[1].started_at == MONDAY + timedelta(seconds=600)
    line = report(store, GroupBy.SHELL)["sh_a"]
    assert line.seconds == 900
    assert line.vcpu_seconds == 4 * 600 + 1 * 300
    assert (
        line.cost == (Decimal("0.2664") * 600 + Decimal("0.0585") * 300) / 3600
    )  # 4 vCPU + 4 GiB, then 1 + 0.5


def test_saving_a_shell_without_a_change_keeps_its_interval(store: Store, clock: ManualClock) -> None:
    new_shell(store, "sh_a", Runtime.CONTAINER, "s-1vcpu-512mb")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(3)
    reshape(store, "sh_a", "s-1vcpu-512mb")
    assert len(store.usage.intervals(*MONTH)) == 1


def test_a_claim_takes_a_pool_shell_of_its_own_class_only(store: Store) -> None:
    """The container and microvm pools share the record's pooled rows."""
    for shell_id, runtime in (("sh_vm", Runtime.MICROVM), ("sh_ct", Runtime.CONTAINER)):
        new_shell(store, shell_id, runtime, "s-1vcpu-512mb", owner="pool", pooled=True)
        to(store, shell_id, ShellState.RUNNING)
    claim = store.claim_pooled
    assert claim("python:1", "s-1vcpu-512mb", "sealed", Runtime.WASM) is None
    assert getattr(claim("python:1", "s-1vcpu-512mb", "sealed", Runtime.CONTAINER), "id", None) == "sh_ct"
    assert getattr(claim("python:1", "s-1vcpu-512mb", "sealed", Runtime.MICROVM), "id", None) == "sh_vm"
    assert claim("python:1", "s-1vcpu-512mb", "sealed", Runtime.CONTAINER) is None


def test_a_warm_pool_shell_is_billed_from_its_claim_to_its_owner(store: Store, clock: ManualClock) -> None:
    new_shell(store, "sh_p", Runtime.CONTAINER, "s-1vcpu-512mb", owner="pool", pooled=True)
    to(store, "sh_p", ShellState.RUNNING)
    clock.advance(3600)  # warming up in the pool is on the house
    assert store.usage.intervals(*MONTH) == []
    claimed = store.claim_pooled("python:1", "s-1vcpu-512mb", "sealed")
    assert claimed is not None
    claimed.tenant, claimed.owner = "default", "bob"
    store.save_shell(claimed)
    clock.advance(20)
    [interval] = store.usage.intervals(*MONTH)
    assert (interval.tenant, interval.owner, interval.started_at) == (
        "default",
        "bob",
        MONDAY + timedelta(hours=1),
    )
    assert report(store, GroupBy.PRINCIPAL)["bob"].seconds == 20


def test_start_up_repair_continues_closes_and_opens_intervals(store: Store, clock: ManualClock) -> None:
    for sid in ("sh_run", "sh_gone", "sh_missing"):
        new_shell(store, sid, Runtime.CONTAINER, "s-1vcpu-512mb")
        to(store, sid, ShellState.RUNNING)
    clock.advance(100)
    # A crash cannot split a state change from its interval; these two stand for damage from outside
    # (an older database, a hand edit): a stopped shell with an open interval, a running one without.
    with store.tx() as s:
        s.execute(delete(UsageIntervalRow).where(UsageIntervalRow.shell_id == "sh_missing"))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE shells SET state = 'stopped' WHERE id = 'sh_gone'")
    repair = store.usage.repair_intervals()
    assert (repair.continued, repair.closed, repair.opened) == (1, 1, 1)
    clock.advance(50)
    lines = report(store, GroupBy.SHELL)
    assert lines["sh_run"].seconds == 150  # it ran all along: continued, neither lost nor doubled
    assert lines["sh_gone"].seconds == 100
    assert lines["sh_missing"].seconds == 50
    assert store.usage.repair_intervals() == type(repair)(continued=2, opened=0, closed=0)


# grouping and periods ---------------------------------------------------------------------------------


def test_reports_clip_to_the_period_and_split_at_midnight_utc(store: Store, clock: ManualClock) -> None:
    clock.set(MONDAY + timedelta(hours=22))
    new_shell(store, "sh_a", Runtime.CONTAINER, "s-2vcpu-2gb", owner="carol")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(4 * 3600)  # 22:00 Monday to 02:00 Tuesday
    to(store, "sh_a", ShellState.STOPPED)
    days = report(store, GroupBy.DAY)
    assert days["2026-03-02"].seconds == days["2026-03-03"].seconds == 7200
    assert report(store, GroupBy.CLASS)["container"].seconds == 14400
    assert report(store, GroupBy.PRINCIPAL)["carol"].vcpu_seconds == 28800
    tuesday = (MONDAY + timedelta(days=1), MONDAY + timedelta(days=1, hours=1))
    assert report(store, GroupBy.SHELL, tuesday)["sh_a"].seconds == 3600


# a week across the classes ----------------------------------------------------------------------------


def at(day: int, hour: float) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour)


def simulate_week(store: Store, clock: ManualClock) -> None:
    """The week of docs/pricing.md ("A week, by hand")."""
    steps: list[tuple[datetime, str, ShellState | str]] = []
    new_shell(store, "sh_vm", Runtime.MICROVM, "s-2vcpu-2gb")
    for day in range(5):  # weekdays 09:00-17:00, paused at night
        steps += [(at(day, 9), "sh_vm", ShellState.RUNNING), (at(day, 17), "sh_vm", ShellState.PAUSED)]
    new_shell(store, "sh_ctr", Runtime.CONTAINER, "s-1vcpu-512mb")
    steps += [(at(0, 0), "sh_ctr", ShellState.RUNNING), (at(7, 0), "sh_ctr", ShellState.STOPPED)]
    new_shell(store, "sh_wasm", Runtime.WASM, "s-1vcpu-512mb")
    for day in (1, 2, 3):  # three runs of 90 minutes
        steps += [
            (at(day, 14), "sh_wasm", ShellState.RUNNING),
            (at(day, 15.5), "sh_wasm", ShellState.STOPPED),
        ]
    new_shell(store, "sh_big", Runtime.MICROVM, "s-4vcpu-4gb", owner="bob")
    steps += [
        (at(5, 10), "sh_big", ShellState.RUNNING),
        (at(5, 12.5), "sh_big", "s-2vcpu-2gb"),  # resized while running
        (at(5, 14), "sh_big", ShellState.DELETED),
    ]
    new_shell(store, "sh_night", Runtime.CONTAINER, "s-2vcpu-2gb", owner="bob")
    steps += [(at(4, 23), "sh_night", ShellState.RUNNING), (at(5, 1), "sh_night", ShellState.STOPPED)]
    for when, sid, step in sorted(steps, key=lambda s: s[0]):
        clock.set(when)
        if isinstance(step, ShellState):
            to(store, sid, step)
        else:
            reshape(store, sid, step)
    clock.set(at(9, 0))


def test_a_week_across_classes_costs_exactly_the_hand_computed_bill(
    store: Store, clock: ManualClock, metering: Metering
) -> None:
    simulate_week(store, clock)
    week = (MONDAY, at(7, 0))
    by_shell = report(store, GroupBy.SHELL, week)
    assert {k: v.cost for k, v in by_shell.items()} == {
        "sh_vm": Decimal("5.328"),  # 40 h x $0.1332
        "sh_ctr": Decimal("4.914"),  # 168 h x $0.02925
        "sh_wasm": Decimal("0.0658125"),  # 4.5 h x $0.014625
        "sh_big": Decimal("0.8658"),  # 2.5 h x $0.2664 + 1.5 h x $0.1332
        "sh_night": Decimal("0.1332"),  # 2 h x $0.0666
        "total": Decimal("11.3068125"),
    }
    by_class = report(store, GroupBy.CLASS, week)
    assert {k: v.cost for k, v in by_class.items()} == {
        "microvm": Decimal("6.1938"),
        "container": Decimal("5.0472"),
        "wasm": Decimal("0.0658125"),
        "total": Decimal("11.3068125"),
    }
    by_principal = report(store, GroupBy.PRINCIPAL, week)
    assert by_principal["bob"].cost == Decimal("0.999")
    by_day = report(store, GroupBy.DAY, week)
    assert by_day["2026-03-06"].cost == Decimal("1.8342")  # docs/pricing.md: 8 h + 24 h + 1 h
    assert sum(v.cost for k, v in by_day.items() if k != "total") == Decimal("11.3068125")
    # What the API shows: rounded once, half up, to the micro-dollar.
    shown = metering.usage(ADMIN, start=MONDAY.isoformat(), end=at(7, 0).isoformat(), group_by="class")
    public = shown.to_public()
    assert public["total"]["cost_usd"] == "11.306813"
    assert [line["key"] for line in public["lines"]] == ["container", "microvm", "wasm"]
    assert public["lines"][2]["cost_usd"] == "0.065813"


# who sees what ----------------------------------------------------------------------------------------


def test_members_see_their_own_usage_and_admins_the_tenants(
    store: Store, clock: ManualClock, metering: Metering
) -> None:
    simulate_week(store, clock)
    bob = Principal("bob", "default", frozenset({"shells.read"}))
    mine = metering.usage(bob, start=MONDAY.isoformat(), group_by="shell").to_public()
    assert {line["key"] for line in mine["lines"]} == {"sh_big", "sh_night"}
    assert mine["owner"] == "bob" and mine["month"] is None
    everyone = metering.usage(ADMIN, start=MONDAY.isoformat()).to_public()
    assert len(everyone["lines"]) == 5 and everyone["month"]["cost_usd"] == "11.306813"
    with pytest.raises(TenantNotFound):
        metering.usage(bob, tenant="other")
    with pytest.raises(PermissionDenied):
        metering.usage(Principal("x", "default", frozenset()))
    with pytest.raises(InvalidRequest):
        metering.usage(ADMIN, group_by="week")
    with pytest.raises(InvalidRequest):
        metering.usage(ADMIN, start=at(2, 0).isoformat(), end=at(1, 0).isoformat())


# free tier and budget caps ----------------------------------------------------------------------------


def test_the_free_tier_is_spent_first_and_the_cap_triggers_at_free_tier_plus_budget(
    store: Store, clock: ManualClock, ctx: ControlContext, metering: Metering
) -> None:
    budgets = Budgets(ctx, metering, Suspension(ctx))
    store.tenancy.add_tenant(TenantRecord("default", {}, MONDAY), draft("-"))
    metering.set_terms(ADMIN, "default", {"free_tier_usd": "0.1332", "budget_usd": 0.0666})
    new_shell(store, "sh_vm", Runtime.MICROVM, "s-2vcpu-2gb")  # $0.1332 an hour
    to(store, "sh_vm", ShellState.RUNNING)
    clock.advance(3600)  # the free tier, exactly
    terms = metering.get_terms(ADMIN, "default")
    assert (terms["cost_usd"], terms["charged_usd"], terms["cap_reached"]) == ("0.133200", "0.000000", False)
    clock.advance(1)
    assert metering.get_terms(ADMIN, "default")["charged_usd"] == "0.000037"  # one second past it
    budgets.check("default")
    clock.advance(1799 - 1)  # one second short of the cap
    budgets.check("default")
    clock.advance(1)
    with pytest.raises(BudgetExceeded) as refused:
        budgets.check("default")
    assert refused.value.details["value"] == "0.066600"
    assert metering.get_terms(ADMIN, "default")["cap_reached"] is True
    metering.set_terms(ADMIN, "default", {"budget_usd": 1})  # raised: runs again
    budgets.check("default")
    metering.set_terms(ADMIN, "default", {"budget_usd": None})  # no cap at all
    budgets.check("default")


def test_a_new_month_starts_a_new_free_tier(store: Store, clock: ManualClock, metering: Metering) -> None:
    clock.set(datetime(2026, 3, 31, 23, tzinfo=UTC))
    new_shell(store, "sh_a", Runtime.MICROVM, "s-2vcpu-2gb")
    to(store, "sh_a", ShellState.RUNNING)
    clock.advance(2 * 3600)
    assert metering.month_cost("default") == Decimal("0.1332")  # April's first hour only


def test_only_platform_admins_set_a_free_tier_and_tenant_admins_their_own_budget(
    store: Store, metering: Metering
) -> None:
    store.tenancy.add_tenant(TenantRecord("acme", {}, MONDAY), draft("-"))
    acme_admin = Principal("root", "acme", frozenset({"shells.read", "tenant.admin"}))
    assert metering.set_terms(acme_admin, "acme", {"budget_usd": "12.5"})["budget_usd"] == "12.500000"
    with pytest.raises(PermissionDenied):
        metering.set_terms(acme_admin, "acme", {"free_tier_usd": 100})
    with pytest.raises(TenantNotFound):
        metering.set_terms(acme_admin, "default", {"budget_usd": 1})
    with pytest.raises(PermissionDenied):
        metering.set_terms(Principal("m", "acme", frozenset({"shells.read"})), "acme", {"budget_usd": 1})
    for bad in (-1, "lots", True, [1], float("nan")):
        with pytest.raises(InvalidRequest):
            metering.set_terms(ADMIN, "acme", {"budget_usd": bad})
    with pytest.raises(InvalidRequest):
        metering.set_terms(ADMIN, "acme", {"budget": 1})
    assert [e.action for e in store.list_events(tenant="acme", shell_id=None)] == ["tenant.billing"]
