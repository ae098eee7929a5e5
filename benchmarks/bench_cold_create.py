"""Where a cold container create's time goes, step by step (no server, no pool: the backend alone).

    python -m benchmarks.bench_cold_create [--runs 20]

Prepares a ``ContainerBackend`` on a data dir of its own (the default template imported from the
host cache), then creates, runs ``echo hi`` in and destroys ``--runs`` shells one after the other,
timing each step of the create by wrapping the backend's own methods: the btrfs snapshots of the
template, the host steps (uid block, idmapped mounts, netns, network attach, config.json; the larger
ones also apart), ``crun run`` (with its private /dev), the agent's start until it answers a ping, and
the first exec. Beside
them, in the same run: the agent runtime's interpreter starting bare and importing the agent, outside
any container (the part of the agent's start that is Python itself), and the CPU a create costs
outside the server: crun's (its processes, reaped by this one) and the shell's cgroup's when its agent
first answers (crun's set-up inside the container and the agent's start).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shells.domain.execution import ExecSpec, collect
from shells.domain.network import NetworkAccess
from shells.domain.shapes import DEFAULT_SHAPE, get_shape
from shells.runtime import agent_client
from shells.runtime.backend import ShellSpec
from shells.runtime.container.backend import ContainerBackend
from shells.runtime.host import idmap, netns
from shells.settings import Settings

TEMPLATE = "python:1"
times: dict[str, list[float]] = defaultdict(list)


def timed_sync(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name].append((time.perf_counter() - t) * 1000)

    return wrapper


def timed_async(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            times[name].append((time.perf_counter() - t) * 1000)

    return wrapper


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def timed_cpu(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """CPU time of the child processes ``fn`` runs and reaps (crun and its wrappers)."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = children_cpu_ms()
        try:
            return await fn(*args, **kwargs)
        finally:
            times[name].append(children_cpu_ms() - before)

    return wrapper


def shell_cpu_ms(backend: ContainerBackend, host_id: str) -> float:
    """CPU time charged to the shell's cgroup so far (cgroup v1 cpuacct, else v2 cpu.stat)."""
    rel = backend._cgroup(host_id).strip("/")
    v1 = Path("/sys/fs/cgroup/cpuacct") / rel / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text(encoding="ascii")) / 1e6
    stat = (Path("/sys/fs/cgroup") / rel / "cpu.stat").read_text(encoding="ascii").split()
    return int(stat[stat.index("usage_usec") + 1]) / 1000


def interpreter_start(backend: ContainerBackend, runs: int) -> None:
    runtime = backend._agent_runtime()
    argv = runtime.argv(str(runtime.root), "--listen-fd", "x")
    python = argv[: argv.index("-m")]
    for name, code in (
        ("agent runtime: python bare", "pass"),
        ("agent runtime: import agent", "import guest.agent"),
    ):
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([*python, "-c", code], check=True)
            times[name].append((time.perf_counter() - t) * 1000)


async def run(runs: int, data_dir: Path) -> None:
    backend = ContainerBackend(Settings(data_dir=data_dir), say=lambda line: None)
    await backend.prepare()
    backend.pool.snapshot = timed_sync("btrfs snapshots (rootfs, workspace)", backend.pool.snapshot)  # type: ignore[method-assign]
    backend._prepare_bundle = timed_sync(
        "host steps (uid, idmap, netns, network, config)", backend._prepare_bundle
    )  # type: ignore[method-assign]
    # Parts of the host steps (each also inside the row above).
    idmap.userns_fd = timed_sync("  of which: the uid map's user namespace", idmap.userns_fd)  # type: ignore[assignment]
    idmap.idmapped_bind = timed_sync("  of which: idmapped mounts (each)", idmap.idmapped_bind)  # type: ignore[assignment]
    backend.disk.limit = timed_sync("  of which: the disk quota", backend.disk.limit)  # type: ignore[method-assign]
    netns.create_sealed_netns = timed_sync("  of which: the sealed netns", netns.create_sealed_netns)  # type: ignore[assignment]
    backend.network.attach = timed_sync("  of which: the network attach", backend.network.attach)  # type: ignore[method-assign]
    backend.crun.run_detached = timed_async("crun run --detach (private /dev)", backend.crun.run_detached)  # type: ignore[method-assign]
    backend.crun.run_detached = timed_cpu(
        "CPU: crun run and its wrappers (host side)", backend.crun.run_detached
    )  # type: ignore[method-assign]
    agent_client.AgentClient.wait_ready = timed_async(
        "agent start until it answers", agent_client.AgentClient.wait_ready
    )  # type: ignore[method-assign]
    try:
        for i in range(runs):
            spec = ShellSpec(
                host_id=f"shbench{i:04d}",
                template=TEMPLATE,
                shape=get_shape(DEFAULT_SHAPE),
                network=NetworkAccess(),
            )
            t = time.perf_counter()
            await backend.create(spec)
            created = time.perf_counter()
            times["CPU: the shell's cgroup when its agent answers"].append(
                shell_cpu_ms(backend, spec.host_id)
            )
            await collect(backend.exec(spec.host_id, ExecSpec(argv=("echo", "hi"))))
            done = time.perf_counter()
            times["create, whole"].append((created - t) * 1000)
            times["first exec (echo hi, to its exit)"].append((done - created) * 1000)
            times["create + first exec"].append((done - t) * 1000)
            await backend.destroy(spec.host_id)
        interpreter_start(backend, runs)
    finally:
        await backend.purge()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-cold-", dir="/var/tmp"))
    try:
        asyncio.run(run(args.runs, root / "data"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
    print(f"runs: {args.runs}; load average {' '.join(load)} (at the end)")
    print(f"{'step':<52} {'median ms':>10} {'min ms':>8}")
    for name, values in times.items():
        print(f"{name:<52} {statistics.median(values):>10.2f} {min(values):>8.2f}")


if __name__ == "__main__":
    main()
