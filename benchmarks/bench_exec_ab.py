"""Exec round trip of this tree against another revision, interleaved in one process.

    python -m benchmarks.bench_exec_ab [--baseline REV] [--runs 300]

Starts two servers, one from this tree and one from ``git archive REV`` (default ``HEAD``), creates a
shell on each and runs ``true`` through ``POST /v1/shells/{id}/exec?wait=true`` alternately, in a
random order per round, so that load from anything else on the host falls on both alike. Each server
gets two of the four execs of a round (a server that is called more often stays warmer and answers
faster): the baseline on two shells, this tree as the owner and as a principal holding an
``operator`` grant (one more lookup). Both run from a copy of their ``src`` (PYTHONPATH), alike.
Prints medians, the difference against the first row, and the ratio; then each server's CPU time per
exec (its process and children, from /proc, over the timed rounds), which a loaded host inflates far
less than the wall clock.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

MEMBER = ["shells.read", "shells.create", "shells.exec", "shells.act", "shells.destroy"]


def extract(rev: str, into: Path) -> Path:
    """The ``src`` tree of ``rev``, without touching the repository's state."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def copy_tree(into: Path) -> Path:
    """This tree's ``src``, copied the same way, so both servers run from alike places."""
    return Path(shutil.copytree(Path(__file__).parent.parent / "src", into / "src"))


def cpu_s(server: ServerProcess) -> float:
    """CPU seconds the server's process has used so far (user + system, its reaped children too)."""
    assert server.proc is not None
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def exec_true(http: httpx.Client, shell: str) -> Callable[[], None]:
    def run() -> None:
        r = http.post(f"/v1/shells/{shell}/exec", params={"wait": "true"}, json={"cmd": ["true"]})
        r.raise_for_status()

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="HEAD")
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-ab-", dir="/var/tmp"))
    old_src, new_src = extract(args.baseline, root / "old"), copy_tree(root / "new")
    baseline = ServerProcess(root / "baseline", warm_pool=0, env={"PYTHONPATH": str(old_src)})
    current = ServerProcess(root / "current", warm_pool=0, env={"PYTHONPATH": str(new_src)})
    clients: list[httpx.Client] = []
    try:
        baseline.start()
        current.start()

        def client(server: ServerProcess, token: str) -> httpx.Client:
            c = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            clients.append(c)
            return c

        old, new = client(baseline, baseline.token), client(current, current.token)
        old_shells = [old.post("/v1/shells", json={"language": "bash"}).json()["id"] for _ in range(2)]
        new_shell = new.post("/v1/shells", json={"language": "bash"}).json()["id"]
        new.post("/v1/tenants", json={"name": "bench"}).raise_for_status()

        def member(name: str) -> httpx.Client:
            body = {"tenant": "bench", "principal": name, "scopes": MEMBER}
            minted = new.post("/v1/tokens", json=body)
            minted.raise_for_status()
            return client(current, minted.json()["token"])

        owner, operator = member("owner"), member("operator")
        shared = owner.post("/v1/shells", json={"language": "bash"}).json()["id"]
        grant = {"principal": "operator", "role": "operator"}
        owner.post(f"/v1/shells/{shared}/grants", json=grant).raise_for_status()
        variants = {
            f"exec true, {args.baseline} (admin, shell 1)": exec_true(old, old_shells[0]),
            f"exec true, {args.baseline} (admin, shell 2)": exec_true(old, old_shells[1]),
            "exec true, this tree (admin, owner)": exec_true(new, new_shell),
            "exec true, this tree (operator grant)": exec_true(operator, shared),
        }
        for run in variants.values():  # warm up connections and code paths
            for _ in range(10):
                run()
        results: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants.items())
        cpu_before = cpu_s(baseline), cpu_s(current)
        for _ in range(args.runs):
            random.shuffle(order)
            for name, run in order:
                started = time.perf_counter()
                run()
                results[name].append((time.perf_counter() - started) * 1000)
        per_exec = 1000 / (2 * args.runs)
        old_cpu = (cpu_s(baseline) - cpu_before[0]) * per_exec
        new_cpu = (cpu_s(current) - cpu_before[1]) * per_exec
    finally:
        for c in clients:
            c.close()
        for server in (baseline, current):
            server.purge()
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(next(iter(results.values())))
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"rounds: {args.runs}, interleaved; load average {load}")
    print(f"{'measurement':<44} {'median ms':>10} {'p90 ms':>8} {'vs baseline':>12}")
    for name, values in results.items():
        med = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<44} {med:>10.2f} {p90:>8.2f} {med - base:>+11.2f}  ({med / base:.2f}x)")
    print(f"server CPU per exec: {args.baseline} {old_cpu:.2f} ms, this tree {new_cpu:.2f} ms", end="")
    print(f" ({new_cpu / old_cpu:.2f}x)")


if __name__ == "__main__":
    main()
