"""What placement costs and how evenly it spreads.

    python -m benchmarks.bench_placement [--creates 500] [--runs 2000]

1. One decision (``control.placement.place``) among 3 and among 300 live nodes, against what a node
   pays to measure its room at each renewal of its Lease (``cluster.membership.host_capacity``).
2. ``--creates`` creates of mixed shapes over three nodes of one region with 160, 192 and 224 GiB
   free, each counted against the chosen offer (``NodeOffer.taking``): how many each node got, and
   how far apart the nodes' free memory ends up (placement evens it out; 0 is perfectly even),
   against a seeded random choice among the nodes with room, as a scheduler without capacity data
   would do.

Prints medians and ratios against the baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from shells.cluster.membership import host_capacity
from shells.control.placement import place
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from shells.domain.shapes import SHAPES, Shape

CLASSES = frozenset({Runtime.CONTAINER, Runtime.MICROVM, Runtime.WASM})
MIX = [SHAPES["s-1vcpu-512mb"]] * 6 + [SHAPES["s-1vcpu-1gb"]] * 3 + [SHAPES["s-2vcpu-2gb"]]


def node(name: str, region: str, memory_mib: int) -> NodeOffer:
    return NodeOffer(name, f"{name}:7070", region, "", CLASSES, "kvm", 32, 32, memory_mib, 1_000_000)


def median_us(step: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def spread(
    offers: list[NodeOffer], creates: int, choose: Callable[[list[NodeOffer], Shape], NodeOffer]
) -> tuple[dict[str, int], int]:
    """Place ``creates`` shells of the mix; per-node counts and the max-min of free memory (MiB)."""
    live = {o.name: o for o in offers}
    counts = dict.fromkeys(live, 0)
    for i in range(creates):
        shape = MIX[i % len(MIX)]
        chosen = choose(list(live.values()), shape)
        live[chosen.name] = chosen.taking(shape)
        counts[chosen.name] += 1
    free = [o.memory_free_mib for o in live.values()]
    return counts, max(free) - min(free)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    shape = SHAPES["s-1vcpu-512mb"]

    measure = median_us(lambda: host_capacity(Path("/var/tmp")), args.runs)
    print(f"baseline: a node measuring its room (every Lease renewal): {measure:8.1f} µs")
    for count in (3, 300):
        offers = [node(f"n{i}", ("eu", "us", "ap")[i % 3], 8192 + i) for i in range(count)]
        took = median_us(lambda offers=offers: place(offers, "eu", Runtime.CONTAINER, shape), args.runs)  # type: ignore[misc]
        print(f"place among {count:3} nodes: {took:8.1f} µs  ({took / measure:.2f}x the baseline)")

    offers = [
        node("small", "eu", 160 * 1024),
        node("medium", "eu", 192 * 1024),
        node("large", "eu", 224 * 1024),
    ]
    rng = random.Random(7)

    def at_random(live: list[NodeOffer], shape: Shape) -> NodeOffer:
        return rng.choice([o for o in live if o.has_room(shape)])

    def placed(live: list[NodeOffer], shape: Shape) -> NodeOffer:
        return place(live, "eu", Runtime.CONTAINER, shape)

    start = time.perf_counter()
    counts, gap = spread(offers, args.creates, placed)
    rate = args.creates / (time.perf_counter() - start)
    base_counts, base_gap = spread(offers, args.creates, at_random)
    print(f"{args.creates} creates over 3 nodes (160/192/224 GiB free), {rate:,.0f} placements/s:")
    print(f"  placement: {counts}  free-memory gap at the end {gap} MiB")
    print(f"  baseline (random among nodes with room): {base_counts}  free-memory gap {base_gap} MiB")
    print(f"  gap ratio placement/baseline: {gap / max(base_gap, 1):.3f}")


if __name__ == "__main__":
    main()
