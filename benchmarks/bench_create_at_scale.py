"""Create and delete latency of one container shell while many others idle on the host.

    python -m benchmarks.bench_create_at_scale [--steps 0,250,500] [--rounds 10] [--baseline REV [--apart N]]

Each server climbs (four creates at a time, ``language=bash``, no warm pool) to each count of
``--steps`` idle shells; at every step, ``--rounds`` times, one more shell is created
(``POST /v1/shells``, timed until it answers: the shell runs) and deleted (``DELETE``, timed until
the host has reclaimed it: the API answers at once and reclaims in the background, so the time runs
until the shell's directory in the pool, the last thing its destroy removes, is gone). A cost that
grows with the count is a per-create or per-delete walk over every shell. With ``--baseline REV``
a second server runs ``git archive REV src`` beside this tree's: both climb to the same count, and
their rounds alternate (the order shuffled each round), so both see the same host load. At the end,
the idle shells of each server are deleted through the API, four at a time, timed per shell.

Side by side, the two servers are not independent where the host is shared: libnftables lists every
set of every table on the host before a batch, so one server's shells slow the other's creates.
``--apart N`` runs the two servers one after the other instead, ``N`` times each, alternating (this
tree first), every run on a host without the other's shells; the ratio lines then compare the
medians over all runs of each server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

from benchmarks.bench_density import AT_ONCE, Fleet
from benchmarks.bench_exec_ab import extract
from benchmarks.bench_scale import UNLIMITED, pct
from shells.runtime.container.backend import host_pool
from shells.settings import Settings

RECLAIM_TIMEOUT_S = 300


def pool_shells(fleet: Fleet) -> Path:
    return host_pool(Settings(data_dir=fleet.server.data_dir)).mount_dir / "shells"


async def reclaimed(fleet: Fleet, shell: str) -> None:
    """Return once the host has removed the deleted shell's directory in the pool."""
    where, deadline = pool_shells(fleet) / shell, time.monotonic() + RECLAIM_TIMEOUT_S
    while where.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{where} still exists {RECLAIM_TIMEOUT_S} s after its delete")
        await asyncio.sleep(0.002)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])


async def one_round(fleet: Fleet, creates: list[float], deletes: list[float]) -> None:
    t = time.perf_counter()
    r = await fleet.http.post("/v1/shells", json={"language": "bash"})
    r.raise_for_status()
    creates.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    (await fleet.http.delete(f"/v1/shells/{r.json()['id']}")).raise_for_status()
    await reclaimed(fleet, str(r.json()["id"]))
    deletes.append((time.perf_counter() - t) * 1000)


async def delete_all(fleet: Fleet) -> list[float]:
    """Delete the fleet's idle shells four at a time; each delete's latency until reclaimed, ms."""
    took: list[float] = []

    async def delete(shell: str) -> None:
        t = time.perf_counter()
        (await fleet.http.delete(f"/v1/shells/{shell}")).raise_for_status()
        await reclaimed(fleet, shell)
        took.append((time.perf_counter() - t) * 1000)

    for i in range(0, len(fleet.ids), AT_ONCE):
        await asyncio.gather(*(delete(s) for s in fleet.ids[i : i + AT_ONCE]))
    fleet.ids = []
    return took


def row(name: str, count: int, creates: list[float], deletes: list[float], now: bool = True) -> str:
    """One line of medians and p95s; with ``now``, the host's load averages as they are."""
    return (
        f"{name:<10} {count:>11} {statistics.median(creates):>9.1f}/{pct(creates, 0.95):<9.1f}"
        f" {statistics.median(deletes):>9.1f}/{pct(deletes, 0.95):<9.1f} {load() if now else '':>15}"
    )


HEADER = (
    f"{'server':<10} {'idle shells':>11} {'create p50/p95 ms':>19} {'delete p50/p95 ms':>19} {'load':>15}"
)
Measured = dict[tuple[str, int], tuple[list[float], list[float]]]
"""(server, idle shells) → the create and delete latencies measured there, ms."""


def ratio(step: int, a: tuple[list[float], list[float]], b: tuple[list[float], list[float]]) -> str:
    (a_c, a_d), (b_c, b_d) = a, b
    return (
        f"{'ratio':<10} {step:>11} {statistics.median(a_c) / statistics.median(b_c):>19.2f}"
        f" {statistics.median(a_d) / statistics.median(b_d):>19.2f}"
    )


async def run(args: argparse.Namespace, servers: dict[str, ServerProcess], measured: Measured) -> list[str]:
    out = [HEADER]
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    floor = int(args.min_available_gib * 1024**3)
    async with contextlib.AsyncExitStack() as stack:
        fleets = []
        for name, server in servers.items():
            headers = {"Authorization": f"Bearer {server.token}"}
            http = httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600, limits=limits)
            fleets.append(Fleet(name, server, await stack.enter_async_context(http)))
        for fleet in fleets:  # the first create builds nothing: templates are cached on the host
            await one_round(fleet, [], [])
        for step in args.steps:
            for fleet in fleets:
                stopped = await fleet.grow(step, floor, args.min_available_gib)
                if stopped:
                    out.append(f"{fleet.name}: {stopped}")
                    return out
            await asyncio.sleep(2)
            now: Measured = {(f.name, step): ([], []) for f in fleets}
            for _ in range(args.rounds):
                for fleet in random.sample(fleets, len(fleets)):
                    await one_round(fleet, *now[(fleet.name, step)])
            for fleet in fleets:
                out.append(row(fleet.name, step, *now[(fleet.name, step)]))
                print(out[-1], flush=True)
                kept = measured.setdefault((fleet.name, step), ([], []))
                kept[0].extend(now[(fleet.name, step)][0])
                kept[1].extend(now[(fleet.name, step)][1])
            if len(fleets) == 2:
                out.append(ratio(step, now[(fleets[0].name, step)], now[(fleets[1].name, step)]))
                print(out[-1], flush=True)
        for fleet in fleets:
            count = len(fleet.ids)
            t = time.perf_counter()
            took = await delete_all(fleet)
            out.append(
                f"{fleet.name}: deleting its {count} idle shells through the API took"
                f" {time.perf_counter() - t:.1f} s (p50 {statistics.median(took):.1f} ms per shell,"
                " 4 at once)"
            )
            print(out[-1], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[0, 250, 500])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--min-available-gib", type=float, default=4.0)
    ap.add_argument("--baseline", help="also run a server from this revision's src, side by side")
    ap.add_argument("--apart", type=int, default=0, help="with --baseline: N runs each, one server at a time")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-create-at-scale-", dir="/var/tmp"))
    env = {**UNLIMITED, "SHELLS_IDLE_TIMEOUT_S": "86400"}
    made = {"this tree": {}} | (
        {args.baseline: {"PYTHONPATH": str(extract(args.baseline, root / "old"))}} if args.baseline else {}
    )
    if args.apart and args.baseline:
        runs = [[name] for _ in range(args.apart) for name in made]
    else:
        runs = [list(made)]
    measured: Measured = {}
    lines: list[str] = []
    try:
        for i, names in enumerate(runs):
            servers = {
                name: ServerProcess(root / f"data-{i}-{n}", warm_pool=0, env={**env, **made[name]})
                for n, name in enumerate(names)
            }
            try:
                for server in servers.values():
                    server.start()
                lines += asyncio.run(run(args, servers, measured))
            finally:
                for server in servers.values():
                    server.purge()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.apart and args.baseline:
        lines.append(f"over {args.apart} runs of each, one server at a time:")
        for step in args.steps:
            if ("this tree", step) in measured and (args.baseline, step) in measured:
                lines += [
                    row("this tree", step, *measured[("this tree", step)], now=False),
                    row(args.baseline, step, *measured[(args.baseline, step)], now=False),
                    ratio(step, measured[("this tree", step)], measured[(args.baseline, step)]),
                ]
    print(f"load average {load()} (at the end)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
