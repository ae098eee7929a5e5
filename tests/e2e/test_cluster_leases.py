"""Kubernetes Leases against a real API server: exactly one holder at a time, a holder that dies
is replaced within one lease duration, a holder cut off from the API stops acting before anyone
else starts (fencing), and what holders publish is readable by everyone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from shells.cluster.kube import Kube, KubeConfig
from shells.cluster.lease import LeaseHolder, LeaseTiming
from tests.support.kube import KubeAPI

TIMING = LeaseTiming(duration_s=3.0, renew_deadline_s=2.0, retry_s=0.25)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def kube(kube_api: KubeAPI) -> AsyncIterator[Kube]:
    client = Kube(kube_api.config())
    yield client
    await client.aclose()


def _lease_name(request: pytest.FixtureRequest) -> str:
    name: str = request.node.name
    return "t-" + name.replace("_", "-")[:50].strip("-").lower()


async def _wait_until(predicate: object, timeout_s: float) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout_s``)."""
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.anyio
async def test_exactly_one_holder_and_a_dead_one_is_replaced_within_a_lease(
    kube: Kube, request: pytest.FixtureRequest
) -> None:
    name = _lease_name(request)
    a, b = LeaseHolder(kube, name, "replica-a", TIMING), LeaseHolder(kube, name, "replica-b", TIMING)
    a.start()
    b.start()
    try:
        await _wait_until(lambda: a.holds() or b.holds(), 5)
        for _ in range(40):  # 2 s of samples: never two holders
            assert not (a.holds() and b.holds())
            await asyncio.sleep(0.05)
        first, second = (a, b) if a.holds() else (b, a)
        before = (await kube.get_lease(name))["spec"]["leaseTransitions"]
        await first.stop(release=False)  # killed: it neither renews nor releases
        took = await _wait_until(second.holds, TIMING.duration_s + 2 * TIMING.retry_s + 1)
        assert took <= TIMING.duration_s + 2 * TIMING.retry_s + 0.5
        lease = (await kube.get_lease(name))["spec"]
        assert lease["holderIdentity"] == second.identity
        assert lease["leaseTransitions"] == before + 1
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.anyio
async def test_a_released_lease_moves_at_once(kube: Kube, request: pytest.FixtureRequest) -> None:
    name = _lease_name(request)
    a, b = LeaseHolder(kube, name, "a", TIMING), LeaseHolder(kube, name, "b", TIMING)
    assert await a.step()
    assert not await b.step()
    b.start()
    try:
        await a.stop(release=True)
        took = await _wait_until(b.holds, 2)
        assert took < TIMING.duration_s / 2, "a released lease waited for its expiry"
    finally:
        await b.stop()


@pytest.mark.anyio
async def test_a_holder_cut_off_from_the_api_stops_before_another_starts(
    kube: Kube, kube_api: KubeAPI, request: pytest.FixtureRequest
) -> None:
    name = _lease_name(request)
    lost_at: list[float] = []
    a = LeaseHolder(
        kube, name, "a", TIMING, on_change=lambda held: None if held else lost_at.append(time.monotonic())
    )
    b = LeaseHolder(kube, name, "b", TIMING)
    assert await a.step()
    a.start()
    b.start()
    try:
        # A's network to the API goes away: its calls fail from now on.
        cut = Kube(KubeConfig(url="https://127.0.0.1:9", token="x", ca_file=kube_api.ca_file), timeout_s=0.5)
        a.kube = cut
        await _wait_until(b.holds, TIMING.duration_s + 3)
        b_started = time.monotonic()
        assert not a.holds()
        assert lost_at and lost_at[0] < b_started, "the old holder still acted when the new one began"
        await cut.aclose()
    finally:
        a.kube = kube
        await a.stop(release=False)
        await b.stop()


@pytest.mark.anyio
async def test_holders_publish_what_they_offer(kube: Kube, request: pytest.FixtureRequest) -> None:
    labels = {"app.kubernetes.io/part-of": "shells", "shells.dev/role": "test-node"}
    holders = [
        LeaseHolder(kube, f"{_lease_name(request)}-{n}", n, TIMING, labels=labels,
                    annotations=lambda n=n: {"shells.dev/address": f"10.0.0.{n[-1]}"})  # type: ignore[misc]
        for n in ("node1", "node2")
    ]  # fmt: skip
    for holder in holders:
        assert await holder.step()
    listed = await kube.list_leases("shells.dev/role=test-node")
    published = {lease["spec"]["holderIdentity"]: lease["metadata"]["annotations"] for lease in listed}
    assert published == {
        "node1": {"shells.dev/address": "10.0.0.1"},
        "node2": {"shells.dev/address": "10.0.0.2"},
    }
    for holder in holders:
        await holder.stop()
        await kube.delete_lease(holder.name)
