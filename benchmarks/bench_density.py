"""Idle density: how many idle container shells this host holds, what each costs, and how the API
answers meanwhile.

    python -m benchmarks.bench_density [--max 1000] [--min-available-gib 4]

Climbs to ``--max`` idle shells (``language=bash``, no warm pool) in steps, creating four at a time,
and stops early when the host's MemAvailable would drop under ``--min-available-gib`` or a create
fails. At each step, with every shell idle:

- PSS per shell: the sum of ``Pss`` (``/proc/<pid>/smaps_rollup``) of every process in each
  shell's cgroup, divided by the shells (the agent's interpreter and libraries are one file on one
  tmpfs, so their pages are shared and PSS splits them);
- the memory cgroup's charge per shell (``memory.usage_in_bytes``: user pages, page tables and
  the kernel objects charged to it);
- host MemAvailable consumed per shell since the start (everything, also what no cgroup is charged
  for; the host is shared, so it moves with other work too);
- latency of ``GET /v1/info`` (50 calls) and of an exec of ``true`` in another, busy-free shell
  (20 calls): p50 and p95;
- the server's own CPU over the 3 idle seconds before them (% of one core: what its per-second work
  over the shells costs) and the host's 1-minute load average then (the shared host's share of the
  latencies).

With ``--baseline REV`` a second server runs from ``git archive REV src`` beside this tree's: at each
step both grow to the same count, then their latencies are measured interleaved (the host memory
figure is then per shell of both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

from benchmarks.bench_exec_ab import extract
from benchmarks.bench_scale import UNLIMITED, pct
from shells.settings import Settings

STEPS = (1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)
AT_ONCE = 4
CGROUP_V1 = Path("/sys/fs/cgroup")


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _cgroup_dir(controller: str, prefix: str) -> Path:
    v1 = CGROUP_V1 / controller / prefix
    return v1 if v1.exists() else CGROUP_V1 / prefix


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pss_and_charge(prefix: str, shell_ids: list[str]) -> tuple[float, float]:
    """Average PSS of a shell's processes and average memory cgroup charge, bytes."""
    pss, charge = 0, 0
    pids_dir, mem_dir = _cgroup_dir("pids", prefix), _cgroup_dir("memory", prefix)
    for sid in shell_ids:
        for pid in (pids_dir / sid / "cgroup.procs").read_text(encoding="ascii").split():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
            except OSError:
                continue
            pss += next(
                int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")
            )
        usage = mem_dir / sid / "memory.usage_in_bytes"
        current = usage if usage.exists() else mem_dir / sid / "memory.current"
        charge += int(current.read_text(encoding="ascii"))
    return pss / len(shell_ids), charge / len(shell_ids)


async def latencies(fleets: list[Fleet]) -> None:
    """50 ``GET /v1/info`` and 20 execs of ``true`` on each server, interleaved (shuffled per round)."""
    for fleet in fleets:
        fleet.info, fleet.execs = [], []
    for round_ in range(50):
        for fleet in random.sample(fleets, len(fleets)):
            t = time.perf_counter()
            (await fleet.http.get("/v1/info")).raise_for_status()
            fleet.info.append((time.perf_counter() - t) * 1000)
            if round_ < 20:
                t = time.perf_counter()
                body = {"cmd": ["true"]}
                r = await fleet.http.post(
                    f"/v1/shells/{fleet.probe}/exec", params={"wait": "true"}, json=body
                )
                r.raise_for_status()
                fleet.execs.append((time.perf_counter() - t) * 1000)


@dataclass
class Fleet:
    """One server's idle shells and what was measured on it at the current step."""

    name: str
    server: ServerProcess
    http: httpx.AsyncClient
    probe: str = ""
    ids: list[str] = field(default_factory=list)
    creates: list[float] = field(default_factory=list)
    info: list[float] = field(default_factory=list)
    execs: list[float] = field(default_factory=list)
    idle_cpu: float = 0.0
    """% of one core the server used while its shells were idle."""

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    async def grow(self, step: int, floor: int, min_available_gib: float) -> str:
        """Create shells four at a time up to ``step``; why it stopped early, or ""."""
        self.creates = []

        async def create() -> None:
            t = time.perf_counter()
            r = await self.http.post("/v1/shells", json={"language": "bash"})
            r.raise_for_status()
            self.creates.append((time.perf_counter() - t) * 1000)
            self.ids.append(str(r.json()["id"]))

        while len(self.ids) < step:
            if mem_available() < floor:
                return f"stopped: MemAvailable under {min_available_gib} GiB"
            try:
                await asyncio.gather(*(create() for _ in range(min(AT_ONCE, step - len(self.ids)))))
            except httpx.HTTPStatusError as exc:
                return f"stopped: a create answered {exc.response.status_code} {exc.response.text[:200]}"
        return ""


async def run(args: argparse.Namespace, servers: dict[str, ServerProcess]) -> list[str]:
    out = [
        f"{'server':<10} {'idle shells':>11} {'PSS/shell MB':>13} {'cgroup/shell MB':>16}"
        f" {'host/shell MB':>14}"
        f" {'info p50/p95 ms':>16} {'exec p50/p95 ms':>16} {'create p50 ms':>14}"
        f" {'server idle CPU %':>18} {'load':>5}"
    ]
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with contextlib.AsyncExitStack() as stack:
        fleets = []
        for name, server in servers.items():
            headers = {"Authorization": f"Bearer {server.token}"}
            http = httpx.AsyncClient(base_url=server.url, headers=headers, timeout=300, limits=limits)
            fleet = Fleet(name, server, await stack.enter_async_context(http))
            fleet.probe = str((await http.post("/v1/shells", json={"language": "bash"})).json()["id"])
            fleets.append(fleet)
        await asyncio.sleep(2)
        start_available = mem_available()
        floor = int(args.min_available_gib * 1024**3)
        for step in (s for s in STEPS if s <= args.max):
            stopped = ""
            for fleet in fleets:
                stopped = stopped or await fleet.grow(step, floor, args.min_available_gib)
            before = [cpu_seconds(fleet.pid) for fleet in fleets]
            await asyncio.sleep(3)  # idle: agents started, nothing running
            for fleet, cpu in zip(fleets, before, strict=True):
                fleet.idle_cpu = (cpu_seconds(fleet.pid) - cpu) / 3 * 100
            load = float(Path("/proc/loadavg").read_text(encoding="ascii").split()[0])
            await latencies(fleets)
            host = (start_available - mem_available()) / sum(len(f.ids) for f in fleets)
            for fleet in fleets:
                prefix = f"shells-{Settings(data_dir=fleet.server.data_dir).instance_id}"
                pss, charge = pss_and_charge(prefix, fleet.ids)
                info, execs, creates = fleet.info, fleet.execs, fleet.creates
                out.append(
                    f"{fleet.name:<10} {len(fleet.ids):>11} {pss / 2**20:>13.2f} {charge / 2**20:>16.2f}"
                    f" {host / 2**20:>14.2f}"
                    f" {statistics.median(info):>7.2f}/{pct(info, 0.95):<8.2f}"
                    f" {statistics.median(execs):>7.2f}/{pct(execs, 0.95):<8.2f}"
                    f" {statistics.median(creates) if creates else 0:>14.1f}"
                    f" {fleet.idle_cpu:>18.1f} {load:>5.1f}"
                )
                print(out[-1], flush=True)
            if stopped:
                out.append(stopped)
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=1000)
    ap.add_argument("--min-available-gib", type=float, default=4.0)
    ap.add_argument("--baseline", help="also run a server from this revision's src, side by side")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-density-", dir="/var/tmp"))
    env = {**UNLIMITED, "SHELLS_IDLE_TIMEOUT_S": "86400"}
    servers = {"this tree": ServerProcess(root / "data", warm_pool=0, env=env)}
    if args.baseline:
        old_src = extract(args.baseline, root / "old")
        servers[args.baseline] = ServerProcess(
            root / "base", warm_pool=0, env={**env, "PYTHONPATH": str(old_src)}
        )
    try:
        for server in servers.values():
            server.start()
        lines = asyncio.run(run(args, servers))
    finally:
        t = time.perf_counter()
        for server in servers.values():
            server.purge()
        shutil.rmtree(root, ignore_errors=True)
        print(f"purge of every shell took {time.perf_counter() - t:.1f} s")
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
    print(f"load average {' '.join(load)} (at the end)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
