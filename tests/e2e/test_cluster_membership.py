"""Membership against a real Kubernetes API server: each node publishes its offer on its own Lease,
the control plane reads the live ones back, a node whose Lease stops being renewed drops out within
one lease duration while the others stay, a node that stops cleanly is gone at once, and a node's
region and zone come from its Kubernetes Node's topology labels."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from shells.cluster.kube import Kube
from shells.cluster.lease import LeaseTiming, micro_time
from shells.cluster.membership import (
    NODE_ROLE,
    ROLE_LABEL,
    Membership,
    NodePublisher,
    lease_name,
    node_topology,
    offer_annotations,
)
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from tests.support.kube import ADMIN_TOKEN, KubeAPI

TIMING = LeaseTiming(duration_s=3.0, renew_deadline_s=2.0, retry_s=0.25)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def admin(kube_api: KubeAPI) -> httpx.AsyncClient:
    """Plain HTTP to the API server as its admin, for what the cluster itself sets up (a Node)."""
    return httpx.AsyncClient(
        base_url=kube_api.url,
        verify=ssl.create_default_context(cafile=kube_api.ca_file),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )


@pytest.fixture
async def kube(kube_api: KubeAPI) -> AsyncIterator[Kube]:
    client = Kube(kube_api.config(namespace="membership"))
    async with admin(kube_api) as h:
        made = await h.post("/api/v1/namespaces", json={"metadata": {"name": "membership"}})
        assert made.status_code in (201, 409), made.text
    yield client
    for lease in await client.list_leases(f"{ROLE_LABEL}={NODE_ROLE}"):
        await client.delete_lease(lease["metadata"]["name"])
    await client.aclose()


def offer(name: str, region: str) -> NodeOffer:
    classes = frozenset({Runtime.CONTAINER, Runtime.MICROVM})
    return NodeOffer(
        name, f"10.0.0.{len(name)}:7070", region, f"{region}-a", classes, "tcg", 2, 1.5, 4096, 50_000
    )


async def _until(predicate: object, timeout_s: float) -> float:
    assert callable(predicate)
    start = time.monotonic()
    while not await predicate():
        assert time.monotonic() - start < timeout_s, "condition not met in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.anyio
async def test_nodes_publish_offers_and_a_dead_node_drops_out_within_a_lease(kube: Kube) -> None:
    offers = {"node-eu": offer("node-eu", "eu"), "node-us": offer("node-us", "us")}
    publishers = {n: NodePublisher(kube, lambda n=n: offers[n], TIMING) for n in offers}  # type: ignore[misc]
    reader = Membership(kube)
    for p in publishers.values():
        p.start()
    try:

        async def both() -> bool:
            return {o.name: o for o in await reader.refresh()} == offers

        await _until(both, 5)
        offers["node-eu"] = replace(offers["node-eu"], memory_free_mib=1024)  # published at the next renewal

        async def updated() -> bool:
            return any(o.memory_free_mib == 1024 for o in await reader.refresh())

        await _until(updated, 3)
        await publishers["node-eu"].holder.stop(release=False)  # killed: no renewal, no release
        killed = time.monotonic()

        async def eu_gone() -> bool:
            return [o.name for o in await reader.refresh()] == ["node-us"]

        await _until(eu_gone, TIMING.duration_s + 3)
        assert time.monotonic() - killed <= TIMING.duration_s + 1.0
        for _ in range(10):  # the live node stays throughout
            assert [o.name for o in await reader.refresh()] == ["node-us"]
            await asyncio.sleep(0.1)
        await publishers["node-us"].stop()  # clean stop: the holder is cleared
        assert await reader.refresh() == []
    finally:
        for p in publishers.values():
            await p.holder.stop(release=False)


@pytest.mark.anyio
async def test_a_reader_that_starts_late_does_not_count_a_long_dead_node(kube: Kube) -> None:
    stale = micro_time().replace(micro_time()[:4], str(int(micro_time()[:4]) - 1))  # a year ago
    spec = {"holderIdentity": "old", "leaseDurationSeconds": 3, "acquireTime": stale, "renewTime": stale}
    await kube.create_lease(
        lease_name("old"), spec, {ROLE_LABEL: NODE_ROLE}, offer_annotations(offer("old", "eu"))
    )
    fresh = NodePublisher(kube, lambda: offer("fresh", "eu"), TIMING)
    assert await fresh.holder.step()
    assert [o.name for o in await Membership(kube).refresh()] == ["fresh"]
    await fresh.stop()


@pytest.mark.anyio
async def test_region_and_zone_come_from_the_nodes_topology_labels(kube: Kube, kube_api: KubeAPI) -> None:
    labels = {"topology.kubernetes.io/region": "eu-west", "topology.kubernetes.io/zone": "eu-west-2b"}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-7", "labels": labels}}
    async with admin(kube_api) as h:
        made = await h.post("/api/v1/nodes", json=node)
        assert made.status_code in (201, 409), made.text
        try:
            assert await node_topology(kube, "worker-7", "local", "") == ("eu-west", "eu-west-2b")
            assert await node_topology(kube, "no-such-node", "local", "z") == ("local", "z")
        finally:
            await h.delete("/api/v1/nodes/worker-7")
