"""What ``/metrics`` reports from the record (the API adds request latencies it measures itself).

Everything here is read from the store when Prometheus scrapes, so the numbers survive restarts and
count every door and the system's own actions alike:

- ``shells_shells{state, runtime}``: shells by state and class now (warm-pool shells apart);
- ``shells_singleton_duties``: 1 on the replica that runs the idle sweep, budgets and time-to-live
  (the ``shells-control`` Lease's holder; always 1 on one box);
- ``shells_actions_total{action, outcome}`` and ``shells_exec_duration_seconds``: from the audit
  events, read incrementally (each scrape reads only the events written since the last);
- ``shells_usage_*_total{runtime}``: running seconds, vCPU-seconds, GiB-seconds and dollars, from
  the usage intervals (the same arithmetic as the bill).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..domain.access import PLATFORM_ADMIN
from ..domain.errors import PermissionDenied
from ..domain.principal import Principal
from ..domain.shell import EventRecord
from ..domain.usage import GroupBy, summarize
from .auth import is_platform_admin
from .context import ControlContext
from .metering import Metering

EXEC_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
ACTION_KINDS = frozenset({"action", "create", "delete", "state"})
"""Audit events that are lifecycle actions (the others are reads, files, exec, admin...)."""
EXEC_KINDS = frozenset({"exec"})
_PAGE = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _EventTail:
    """Counts of the audit events written so far, kept up to date one page of new events at a time."""

    def __init__(self) -> None:
        self.after = 0
        self.actions: Counter[tuple[str, str]] = Counter()
        self.exec_buckets = [0] * len(EXEC_BUCKETS_S)
        self.exec_count = 0
        self.exec_sum = 0.0

    def add(self, event: EventRecord) -> None:
        self.after = max(self.after, event.id)
        if event.kind in ACTION_KINDS:
            self.actions[(event.action, event.outcome)] += 1
        elif event.kind in EXEC_KINDS and isinstance(event.details.get("duration_ms"), int | float):
            seconds = float(event.details["duration_ms"]) / 1000
            first = bisect.bisect_left(EXEC_BUCKETS_S, seconds)
            for i in range(first, len(EXEC_BUCKETS_S)):
                self.exec_buckets[i] += 1
            self.exec_count += 1
            self.exec_sum += seconds


class ShellsCollector(Collector):
    def __init__(self, ctx: ControlContext, metering: Metering) -> None:
        self.ctx = ctx
        self.metering = metering
        self._tail = _EventTail()

    @staticmethod
    def authorize(principal: Principal) -> None:
        """Metrics span every tenant: platform admins only (give Prometheus such a token)."""
        if not is_platform_admin(principal):
            raise PermissionDenied("Only a platform admin reads /metrics.", {"scope": PLATFORM_ADMIN})

    def describe(self) -> list[GaugeMetricFamily]:
        """Nothing up front: registering must not read a store that is not migrated yet."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield self._shells()
        duties = GaugeMetricFamily(
            "shells_singleton_duties", "1 on the control-plane replica that runs the singleton duties now"
        )
        duties.add_metric([], 1 if self.ctx.background.leader() else 0)
        yield duties
        self._catch_up()
        yield from self._events()
        yield from self._usage()

    def _shells(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(
            "shells_shells", "Shells by state and isolation class", labels=["state", "runtime"]
        )
        for (state, runtime), n in sorted(self.ctx.store.usage.shell_counts().items()):
            gauge.add_metric([state, runtime], n)
        return gauge

    def _catch_up(self) -> None:
        while True:
            page = self.ctx.store.list_events(tenant=None, shell_id=None, after=self._tail.after, limit=_PAGE)
            for event in page:
                self._tail.add(event)
            if len(page) < _PAGE:
                return

    def _events(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        actions = CounterMetricFamily(
            "shells_actions",
            "Lifecycle actions by outcome (every door and the system)",
            labels=["action", "outcome"],
        )
        for (action, outcome), n in sorted(self._tail.actions.items()):
            actions.add_metric([action, outcome], n)
        yield actions
        tail = self._tail
        buckets = [(str(b), n) for b, n in zip(EXEC_BUCKETS_S, tail.exec_buckets, strict=True)]
        yield HistogramMetricFamily(
            "shells_exec_duration_seconds",
            "Wall time of commands and code runs in shells",
            buckets=[*buckets, ("+Inf", tail.exec_count)],
            sum_value=tail.exec_sum,
        )

    def _usage(self) -> Iterator[CounterMetricFamily]:
        now = self.ctx.store.clock.now()
        lines, _ = summarize(
            self.ctx.store.usage.intervals(_EPOCH, now), _EPOCH, now, now, self.metering.rates, GroupBy.CLASS
        )
        families = {
            "seconds": CounterMetricFamily("shells_usage_seconds", "Seconds shells ran", labels=["runtime"]),
            "vcpu": CounterMetricFamily(
                "shells_usage_vcpu_seconds", "vCPU-seconds billed", labels=["runtime"]
            ),
            "gib": CounterMetricFamily(
                "shells_usage_gib_seconds", "GiB-seconds of memory billed", labels=["runtime"]
            ),
            "cost": CounterMetricFamily(
                "shells_usage_cost_usd", "Dollars billed at the current rates", labels=["runtime"]
            ),
        }
        for line in lines:
            families["seconds"].add_metric([line.key], float(line.seconds))
            families["vcpu"].add_metric([line.key], float(line.vcpu_seconds))
            families["gib"].add_metric([line.key], float(line.gib_seconds))
            families["cost"].add_metric([line.key], float(line.cost))
        yield from families.values()
