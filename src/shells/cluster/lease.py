"""Holding a Kubernetes Lease: who runs the singleton duties, and which nodes are alive.

The API server is the only arbiter. Every write is a PUT carrying the ``resourceVersion`` that was
read, so of two contenders exactly one succeeds (the other gets 409 and reads again). Expiry is
judged on this process's monotonic clock, never by comparing timestamps written by other machines:
a lease held by someone else counts as expired once its record has not changed for
``duration_s`` of *our* time since we first saw that version.

A holder believes it holds the lease only until ``renew_deadline_s`` after the start of its last
successful write. Because ``renew_deadline_s < duration_s``, an old holder has stopped acting before
any other contender can take over (the contender waits a whole ``duration_s`` from a moment after
that write): the time-based fencing Kubernetes' own controllers rely on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .kube import Conflict, Kube, KubeError, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseTiming:
    duration_s: float = 15.0
    """How long a lease stays held without a renewal (written into the Lease for humans and tools)."""
    renew_deadline_s: float = 10.0
    """A holder that has not renewed for this long stops acting as the holder."""
    retry_s: float = 2.0
    """How often a holder renews and a contender tries."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_s < self.renew_deadline_s < self.duration_s:
            raise ValueError("lease timing must satisfy 0 < retry_s < renew_deadline_s < duration_s")


def micro_time(at: datetime | None = None) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds, in UTC."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseHolder:
    """Acquires and renews the Lease ``name`` as ``identity``.

    ``annotations`` (called before each write) publishes what the holder offers, e.g. a node's
    address and free capacity; ``on_change(held)`` is called when holding starts or stops."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        identity: str,
        timing: LeaseTiming = LeaseTiming(),
        *,
        labels: dict[str, str] | None = None,
        annotations: Callable[[], dict[str, str]] | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.name = name
        self.identity = identity
        self.timing = timing
        self.labels = labels or {}
        self.annotations = annotations or dict
        self.on_change = on_change
        self.clock = clock
        self._held_until = 0.0
        self._seen: tuple[str, float] | None = None
        """(resourceVersion of the last record seen, our time when it was first seen)."""
        self._was_held = False
        self._task: asyncio.Task[None] | None = None

    def holds(self) -> bool:
        """Whether this process may act as the holder right now."""
        return self.clock() < self._held_until

    async def step(self) -> bool:
        """One attempt to acquire or renew; returns whether the lease is held afterwards."""
        started = self.clock()
        try:
            await self._try(started)
        except (KubeError, httpx.HTTPError) as exc:  # the API is away: holding runs out on its own
            log.warning("lease %s: %s: %s", self.name, type(exc).__name__, exc)
        self._notify()
        return self.holds()

    async def _try(self, started: float) -> None:
        try:
            lease = await self.kube.get_lease(self.name)
        except NotFound:
            with contextlib.suppress(Conflict):  # another contender created it first
                await self.kube.create_lease(
                    self.name, self._spec(transitions=0), self.labels, self.annotations()
                )
                self._won(started)
            return
        spec = lease.get("spec", {})
        version = str(lease["metadata"]["resourceVersion"])
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, started)
        holder = spec.get("holderIdentity")
        if holder != self.identity and holder and started - self._seen[1] < self.timing.duration_s:
            self._held_until = 0.0  # somebody else holds it and renews it
            return
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        new_spec = self._spec(transitions)
        if holder == self.identity and spec.get("acquireTime"):
            new_spec["acquireTime"] = spec["acquireTime"]
        lease["spec"] = new_spec
        lease["metadata"].setdefault("annotations", {}).update(self.annotations())
        lease["metadata"].setdefault("labels", {}).update(self.labels)
        try:
            written = await self.kube.replace_lease(lease)
        except Conflict:
            self._held_until = 0.0 if holder != self.identity else self._held_until
            return
        self._seen = (str(written["metadata"]["resourceVersion"]), started)
        self._won(started)

    def _spec(self, transitions: int) -> dict[str, Any]:
        now = micro_time()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.duration_s)),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _won(self, started: float) -> None:
        self._held_until = started + self.timing.renew_deadline_s

    def _notify(self) -> None:
        held = self.holds()
        if held != self._was_held:
            self._was_held = held
            log.info("lease %s: %s", self.name, "held" if held else "lost")
            if self.on_change is not None:
                self.on_change(held)

    async def run(self) -> None:
        """Renew (or contend) every ``retry_s`` until cancelled."""
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("lease %s: unexpected failure; trying again", self.name)
            await asyncio.sleep(self.timing.retry_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self, release: bool = True) -> None:
        """Stop contending; a holder that ``release``s clears the holder so another takes over at
        once instead of after the lease expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if release and self.holds():
            self._held_until = 0.0
            with contextlib.suppress(Exception):
                lease = await self.kube.get_lease(self.name)
                if lease.get("spec", {}).get("holderIdentity") == self.identity:
                    lease["spec"]["holderIdentity"] = None
                    await self.kube.replace_lease(lease)
        self._notify()
