"""The warm pool's size and start rate follow recent demand, within the floor and the memory bound."""

from __future__ import annotations

from shells.control.pool_demand import MAX_PARALLEL_STARTS, WINDOW_S, PoolDemand
from shells.domain.limits import IDLE_SHELL_BYTES, WARM_POOL_MAX

PLENTY = 1 << 40


def plenty() -> int:
    return PLENTY


def test_an_idle_pool_keeps_its_floor_and_starts_one_at_a_time() -> None:
    demand = PoolDemand(2, available_bytes=plenty)
    assert demand.target(100.0) == 2
    assert demand.parallel_starts(100.0) == 1


def test_a_burst_raises_the_target_and_the_starts_then_ages_out() -> None:
    demand = PoolDemand(2, available_bytes=plenty)
    for i in range(60):  # 60 creates within 6 s: 2 a second over the window
        demand.note_create(100.0 + i * 0.1)
    assert demand.target(106.0) == 10  # five seconds of that rate
    assert demand.parallel_starts(106.0) == 1
    for i in range(240):  # 10 a second
        demand.note_create(106.0 + i * 0.01)
    assert demand.target(108.4) == 50
    assert 1 < demand.parallel_starts(108.4) < MAX_PARALLEL_STARTS
    assert demand.target(108.4 + WINDOW_S + 1) == 2  # demand stopped: back to the floor


def test_the_target_never_passes_the_cap_or_the_memory_bound() -> None:
    demand = PoolDemand(2, available_bytes=plenty)
    for _ in range(10_000):
        demand.note_create(100.0)
    assert demand.target(100.0) == WARM_POOL_MAX
    assert demand.parallel_starts(100.0) == MAX_PARALLEL_STARTS
    small = PoolDemand(2, available_bytes=lambda: 50 * IDLE_SHELL_BYTES)  # 10 % of it: room for 5 shells
    for _ in range(10_000):
        small.note_create(100.0)
    assert small.target(100.0) == 5


def test_the_memory_bound_follows_the_budget_and_what_the_host_has_now() -> None:
    available = [PLENTY]
    demand = PoolDemand(2, budget_bytes=8 * IDLE_SHELL_BYTES, available_bytes=lambda: available[0])
    for _ in range(10_000):
        demand.note_create(100.0)
    assert demand.target(100.0) == 8  # the operator's budget, though the host has plenty
    available[0] = 6 * IDLE_SHELL_BYTES  # the host runs short: half of what is left
    assert demand.target(100.0) == 3
    available[0] = 0
    assert demand.target(100.0) == 2  # never under the floor
    unbounded = PoolDemand(2, available_bytes=lambda: available[0])
    for _ in range(10_000):
        unbounded.note_create(100.0)
    available[0] = 200 * IDLE_SHELL_BYTES  # no budget: 10 % of the memory available now
    assert unbounded.target(100.0) == 20


def test_a_disabled_pool_stays_empty_and_the_floor_holds_without_memory() -> None:
    off = PoolDemand(0, available_bytes=plenty)
    off.note_create(1.0)
    assert off.target(1.0) == 0
    assert PoolDemand(2, available_bytes=lambda: 0).target(1.0) == 2


def test_a_pool_of_large_shells_is_bounded_by_their_size() -> None:
    """The microvm pool counts each VM at its shape's memory: 10 % of 4 GiB holds no 512 MiB VM
    beyond the floor, and 10 % of 16 GiB holds three."""
    vm = 512 << 20
    assert PoolDemand(1, available_bytes=lambda: 4 << 30, shell_bytes=vm).ceiling() == 1
    assert PoolDemand(1, available_bytes=lambda: 16 << 30, shell_bytes=vm).ceiling() == 3
