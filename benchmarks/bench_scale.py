"""Create → first output the way the field measures it: back to back, in a burst, and under concurrency.

    python -m benchmarks.bench_scale [--sequential 100] [--burst 100] [--clients 1,10,20,50]

Every create is ``POST /v1/shells`` (the default python shell, which the warm pool serves while it
has shells) then ``POST /v1/shells/{id}/exec`` of ``echo hi`` until the first stdout line; the
shell is deleted after, outside the timing. Phases, on one server (warm pool floor 2, adapting):

- sequential: ``--sequential`` creates one after the other (the independent benchmark's shape);
- cold: creates of a shape the pool never holds, so each builds and starts a shell;
- burst: ``--burst`` creates sent at once; the wall time to the last first output gives creates/s;
- sweep: for each client count, that many clients each creating in a loop for ``--seconds``;
- idle (first): the server's CPU per second over ``--idle-seconds`` with nothing asked of it.

Baselines in the same run: ``podman run --rm --network=none`` of the same template and command,
sequential, as many at once as the burst's first ten (podman is not built for a burst of 100
on two cores: ten say what it does under concurrency), and for each client count of the sweep as
many clients running podman in a loop for ``--podman-seconds``.

Each row also prints the server's CPU time per create (its process's user + system time over the
phase, the shell's delete included): on a shared host the figure the other work moves least, and
the one that bounds creates/s (the pool refills at the rate the host can start shells).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
from tests.e2e.harness import ServerProcess

from benchmarks.bench_container import PODMAN_IMAGE, PODMAN_RUN, podman_ready
from shells.settings import Settings

UNLIMITED = {
    "SHELLS_RATE_LIMIT_PER_S": "1000000",
    "SHELLS_RATE_LIMIT_BURST": "1000000",
    "SHELLS_QUOTA_MAX_SHELLS": "100000",
    "SHELLS_QUOTA_MAX_VCPUS": "100000",
    "SHELLS_QUOTA_MAX_MEMORY_MIB": "100000000",
}
"""The token's rate limit and the tenant's quotas would refuse what is measured here."""
POOLED = {"language": "python"}
COLD = {"language": "python", "shape": "s-1vcpu-1gb"}
PODMAN_BASELINE_RUNS = 20
T = TypeVar("T")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, values: list[float], extra: str = "", cpu_ms: float | None = None) -> str:
    p50, p95 = statistics.median(values), pct(values, 0.95)
    cpu = "" if cpu_ms is None else f"{cpu_ms:.1f}"
    return f"{name:<44} {len(values):>5} {p50:>9.1f} {p95:>9.1f} {min(values):>8.1f} {cpu:>8}  {extra}"


class ServerCpu:
    """The server process's CPU time (user + system), to charge a phase's creates with."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mark = self.now()

    def now(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def per(self, creates: int) -> float:
        """Milliseconds of CPU per create since the last call (or since start)."""
        now = self.now()
        spent, self.mark = now - self.mark, now
        return spent * 1000 / max(1, creates)


async def first_output(http: httpx.AsyncClient, body: dict[str, object]) -> tuple[float, str]:
    """Milliseconds from the create request to the first stdout line of ``echo hi``; the shell id."""
    t = time.perf_counter()
    r = await http.post("/v1/shells", json=body)
    r.raise_for_status()
    sid = str(r.json()["id"])
    async with http.stream("POST", f"/v1/shells/{sid}/exec", json={"cmd": ["echo", "hi"]}) as s:
        async for line in s.aiter_lines():
            if json.loads(line).get("type") == "stdout":
                break
    return (time.perf_counter() - t) * 1000, sid


async def create_and_delete(http: httpx.AsyncClient, body: dict[str, object]) -> float:
    took, sid = await first_output(http, body)
    await http.delete(f"/v1/shells/{sid}")
    return took


async def sequential(http: httpx.AsyncClient, n: int, body: dict[str, object]) -> list[float]:
    return [await create_and_delete(http, body) for _ in range(n)]


async def burst(http: httpx.AsyncClient, n: int) -> tuple[list[float], float]:
    t = time.perf_counter()
    results = await asyncio.gather(*(first_output(http, POOLED) for _ in range(n)))
    wall = time.perf_counter() - t
    await asyncio.gather(*(http.delete(f"/v1/shells/{sid}") for _, sid in results))
    return [took for took, _ in results], wall


async def sweep(http: httpx.AsyncClient, clients: int, seconds: float) -> tuple[list[float], float]:
    """``clients`` loops creating until ``seconds`` pass; latencies and creates per second."""
    stop = time.perf_counter() + seconds
    latencies: list[float] = []

    async def client() -> None:
        while time.perf_counter() < stop:
            latencies.append(await create_and_delete(http, POOLED))

    t = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, len(latencies) / (time.perf_counter() - t)


def podman_once() -> float:
    t = time.perf_counter()
    subprocess.run([*PODMAN_RUN, PODMAN_IMAGE, "echo", "hi"], check=True, capture_output=True)
    return (time.perf_counter() - t) * 1000


async def podman_at_once(n: int) -> tuple[list[float], float]:
    t = time.perf_counter()
    results = await in_threads([podman_once] * n)
    return list(results), n / (time.perf_counter() - t)


async def in_threads(calls: list[Callable[[], T]]) -> list[T]:
    """Every call at once, each in a thread of its own (``asyncio.to_thread``'s default pool would run
    only cpu_count + 4 at a time, so 20 podman clients were 6)."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(await asyncio.gather(*(loop.run_in_executor(pool, call) for call in calls)))


async def podman_sweep(clients: int, seconds: float) -> tuple[list[float], float]:
    """The sweep's baseline: ``clients`` threads running podman in a loop until ``seconds`` pass."""
    stop = time.perf_counter() + seconds

    def client() -> list[float]:
        took: list[float] = []
        while time.perf_counter() < stop:
            took.append(podman_once())
        return took

    t = time.perf_counter()
    runs = await in_threads([client] * clients)
    latencies = [took for run in runs for took in run]
    return latencies, len(latencies) / (time.perf_counter() - t)


async def wait_pool_refilled(server: ServerProcess) -> None:
    await asyncio.to_thread(server.wait_pool_ready)
    await asyncio.sleep(1)


async def run(args: argparse.Namespace, server: ServerProcess, use_podman: bool) -> list[str]:
    head = f"{'measurement':<44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>8} {'cpu ms':>8}"
    out = [f"{head}  ratio / rate (cpu ms: the server's CPU per create, its delete included)"]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {server.token}"}
    assert server.proc is not None
    cpu = ServerCpu(server.proc.pid)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300, limits=limits) as http:
        await create_and_delete(http, POOLED)  # first-request costs (imports, connections) out of the way
        await wait_pool_refilled(server)
        if args.idle_seconds > 0:  # what the background duties (pollers, sweeps) cost with nothing to do
            cpu.per(1)
            await asyncio.sleep(args.idle_seconds)
            idle = cpu.per(1) / args.idle_seconds
            out.append(f"{'idle server, pool full: CPU ms per second':<44} {idle:>53.1f}")
        podman: list[float] = []
        if use_podman:
            podman = [await asyncio.to_thread(podman_once) for _ in range(PODMAN_BASELINE_RUNS)]
        cpu.per(1)
        seq = await sequential(http, args.sequential, POOLED)
        base = statistics.median(podman) if podman else 0.0
        vs = f"{base / statistics.median(seq):.1f}x faster than podman run" if podman else ""
        out.append(row("sequential create+echo hi, REST", seq, vs, cpu.per(len(seq))))
        await wait_pool_refilled(server)
        cpu.per(1)
        cold = await sequential(http, args.cold, COLD)
        vs = f"{base / statistics.median(cold):.1f}x faster than podman run" if podman else ""
        out.append(row("cold create+echo hi, REST (pool miss)", cold, vs, cpu.per(len(cold))))
        if podman:
            out.append(row("podman run --rm echo hi, sequential", podman))
        await wait_pool_refilled(server)
        cpu.per(1)
        lat, wall = await burst(http, args.burst)
        rate = f"{args.burst / wall:.1f} creates/s"
        out.append(row(f"burst of {args.burst} at once, REST", lat, rate, cpu.per(len(lat))))
        if use_podman:
            plat, prate = await podman_at_once(10)
            out.append(row("podman run, 10 at once", plat, f"{prate:.1f} runs/s"))
        for clients in args.clients:
            await wait_pool_refilled(server)
            cpu.per(1)
            lat, rate_s = await sweep(http, clients, args.seconds)
            name = f"{clients} clients creating in a loop, REST"
            out.append(row(name, lat, f"{rate_s:.1f} creates/s", cpu.per(len(lat))))
            if use_podman and args.podman_seconds > 0:
                plat, prate = await podman_sweep(clients, args.podman_seconds)
                out.append(row(f"{clients} clients running podman in a loop", plat, f"{prate:.1f} runs/s"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequential", type=int, default=100)
    ap.add_argument("--cold", type=int, default=20)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--clients", type=lambda s: [int(c) for c in s.split(",")], default=[1, 10, 20, 50])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=10.0, help="the idle server's CPU; 0: not measured")
    ap.add_argument("--podman-seconds", type=float, default=10.0, help="each sweep's baseline; 0: none")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-scale-", dir="/var/tmp"))
    server = ServerProcess(root / "data", warm_pool=2, env=UNLIMITED)
    server.start()
    try:
        use_podman = podman_ready(Settings.from_env().cache_dir)
        lines = asyncio.run(run(args, server, use_podman))
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
    print(f"load average {' '.join(load)} (at the end)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
