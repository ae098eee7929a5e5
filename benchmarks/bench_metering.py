"""What metering costs: the interval kept in step inside every state change, and a month's bill.

    python -m benchmarks.bench_metering [--runs 400] [--intervals 20000]

1. A state change (``Store.change_state``, running <-> stopped, SQLite in WAL mode on /var/tmp) with
   usage intervals followed in the same transaction, against the same change with the interval step
   replaced by a no-op: alternated in one process, so both see the same database and machine.
2. A month's usage report (``Metering.usage``, grouped by class and by day) over ``--intervals``
   closed intervals of one tenant: the read plus the exact ``Decimal`` arithmetic.

Prints medians and the ratio against the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shells.control.context import ControlContext
from shells.control.metering import Metering
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.principal import ADMIN_SCOPES, Principal
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.settings import Settings
from shells.store import repository
from shells.store.repository import EventDraft, Store
from shells.store.usage import UsageIntervalRow


def shell(shell_id: str, now: datetime) -> ShellRecord:
    return ShellRecord(
        id=shell_id,
        tenant="default",
        owner="bench",
        name=shell_id,
        state=ShellState.CREATING,
        runtime=Runtime.CONTAINER,
        language=Language.PYTHON,
        template="python:1",
        network=NetworkAccess(NetworkMode.SEALED),
        shape="s-1vcpu-512mb",
        region="local",
        created_at=now,
        updated_at=now,
    )


def flip(store: Store, shell_id: str) -> Callable[[], None]:
    """One state change per call, alternating stopped and running."""
    state = [ShellState.RUNNING]

    def step() -> None:
        state[0] = ShellState.STOPPED if state[0] is ShellState.RUNNING else ShellState.RUNNING
        draft = EventDraft(
            tenant="default", shell_id=shell_id, principal="bench", door="bench", kind="state", action="b"
        )
        store.change_state(shell_id, state[0], "", draft)

    return step


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def bench_state_changes(store: Store, runs: int) -> None:
    now = datetime.now(UTC)
    for sid in ("sh_metered", "sh_plain"):
        store.add_shell(shell(sid, now))
        store.change_state(
            sid,
            ShellState.RUNNING,
            "",
            EventDraft(tenant="default", shell_id=sid, principal="b", door="b", kind="state", action="b"),
        )
    metered, plain = flip(store, "sh_metered"), flip(store, "sh_plain")
    real = repository.follow_shell
    with_ms, without_ms = [], []
    for _ in range(runs):
        with_ms.append(timed(metered))
        repository.follow_shell = lambda *_: None  # type: ignore[assignment]
        try:
            without_ms.append(timed(plain))
        finally:
            repository.follow_shell = real
    a, b = statistics.median(with_ms), statistics.median(without_ms)
    print(f"state change, intervals followed:   median {a:.3f} ms")
    print(f"state change, baseline (no step):   median {b:.3f} ms")
    print(f"ratio {a / b:.2f}x, difference {a - b:.3f} ms per change ({runs} runs each)")


def bench_report(store: Store, data_dir: Path, intervals: int) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    with store.tx() as s:
        for i in range(intervals):
            begin = start + timedelta(seconds=i * 97)
            s.add(
                UsageIntervalRow(
                    shell_id=f"sh_{i % 200}",
                    tenant="monthly",
                    owner=f"p{i % 7}",
                    runtime=list(Runtime)[i % 3].value,
                    shape="s-1vcpu-512mb",
                    vcpus_milli=1000,
                    memory_mib=512,
                    started_at=begin,
                    ended_at=begin + timedelta(seconds=60),
                )
            )
    metering = Metering(ControlContext(Settings(data_dir=data_dir), store, {}), list)
    admin = Principal("admin", "monthly", ADMIN_SCOPES)
    end = (start + timedelta(days=31)).isoformat()
    for group in ("class", "day"):
        runs = [
            timed(lambda g=group: metering.usage(admin, start=start.isoformat(), end=end, group_by=g))
            for _ in range(5)
        ]
        print(f"month report of {intervals} intervals by {group}: median {statistics.median(runs):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--intervals", type=int, default=20000)
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="shells-bench-metering-", dir="/var/tmp"))
    try:
        store = Store(f"sqlite:///{top / 'bench.db'}")
        store.migrate()
        bench_state_changes(store, args.runs)
        bench_report(store, top, args.intervals)
        store.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
