"""What the node boundary costs: one box against a control plane driving a node agent on another
"machine" (its own netns and address behind a test bridge), in one run.

    python -m benchmarks.bench_node_rpc [--runs 200] [--creates 15]

Two set-ups run side by side: ``shells serve`` (control and node in one process) and ``shells serve
--role control --node URL`` with ``shells node`` in its own network namespace. Measured, interleaved
in a random order per round so load from anything else falls on both alike:

- exec round trip: ``POST /v1/shells/{id}/exec?wait=true`` running ``true``;
- create → first output: ``POST /v1/shells`` (no warm pool on either) and a streamed exec of
  ``echo hi``, until its first output arrives; the shell is deleted afterwards (not timed).

Prints medians, p90 and the difference and ratio against one box (the goal: < 5 ms added to an
exec, create → first output within 1.5x).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess, serving
from tests.e2e.node_link import cluster_secret, node_machine


def exec_true(http: httpx.Client, shell: str) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        r = http.post(f"/v1/shells/{shell}/exec", params={"wait": "true"}, json={"cmd": ["true"]})
        r.raise_for_status()
        return (time.perf_counter() - started) * 1000

    return run


def create_to_output(http: httpx.Client, region: str | None = None) -> Callable[[], float]:
    body = {"language": "bash"} | ({"region": region} if region else {})

    def run() -> float:
        started = time.perf_counter()
        created = http.post("/v1/shells", json=body)
        created.raise_for_status()
        shell = created.json()["id"]
        with http.stream("POST", f"/v1/shells/{shell}/exec", json={"cmd": ["echo", "hi"]}) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                if '"type":"stdout"' in line.replace(" ", ""):
                    break
        took = (time.perf_counter() - started) * 1000
        http.delete(f"/v1/shells/{shell}").raise_for_status()
        return took

    return run


def measure(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants.items())
    for _ in range(rounds):
        random.shuffle(order)
        for name, run in order:
            results[name].append(run())
    return results


def warm_and_measure(
    execs: dict[str, Callable[[], float]],
    creates: dict[str, Callable[[], float]],
    runs: int,
    create_runs: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each variant run three times unmeasured (connections, code paths), then both measured."""
    for run in [*execs.values(), *creates.values()]:
        for _ in range(3):
            run()
    return measure(execs, runs), measure(creates, create_runs)


def report(title: str, results: dict[str, list[float]]) -> None:
    base = statistics.median(next(iter(results.values())))
    print(f"\n{title}")
    print(f"{'set-up':<40} {'median ms':>10} {'p90 ms':>8} {'vs one box':>12}")
    for name, values in results.items():
        med = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<40} {med:>10.2f} {p90:>8.2f} {med - base:>+11.2f}  ({med / base:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--creates", type=int, default=15)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-node-", dir="/var/tmp"))
    clients: list[httpx.Client] = []
    try:
        with node_machine(root / "machine", cluster_secret(root)) as machine:
            machine.start("bench-node")
            env = {"SHELLS_NODES": machine.url, "SHELLS_CLUSTER_SECRET_FILE": str(machine.secret_file)}
            one_box = ServerProcess(root / "one-box", warm_pool=0)
            control = ServerProcess(root / "control", warm_pool=0, env=env)
            with serving(one_box, "bench-one-box"), serving(control, "bench-control"):

                def client(server: ServerProcess) -> httpx.Client:
                    c = httpx.Client(
                        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
                    )
                    clients.append(c)
                    return c

                local, remote = client(one_box), client(control)
                shells = {
                    c: c.post("/v1/shells", json={"language": "bash"}).json()["id"] for c in (local, remote)
                }
                execs = {
                    "one box (in-process node)": exec_true(local, shells[local]),
                    "control -> node agent over a link": exec_true(remote, shells[remote]),
                }
                creates = {
                    "one box (in-process node)": create_to_output(local),
                    "control -> node agent over a link": create_to_output(remote),
                }
                exec_results, create_results = warm_and_measure(execs, creates, args.runs, args.creates)
                for c, shell in shells.items():
                    c.delete(f"/v1/shells/{shell}")
                for c in clients:
                    c.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"load average {load}; {args.runs} exec rounds, {args.creates} create rounds, interleaved")
    report("exec round trip (true, wait=true)", exec_results)
    report("create -> first output (no warm pool)", create_results)


if __name__ == "__main__":
    main()
