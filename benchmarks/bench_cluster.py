"""The local cluster of ``make cluster-up`` against one box, in one run.

    python -m benchmarks.bench_cluster [--runs 200] [--creates 15] [--spread 500]

Starts the cluster (``tests.e2e.local_cluster``: two control replicas over PostgreSQL and a
Kubernetes API, three node agents each in its own network namespace behind a bridge) and two one-box
``shells serve`` beside it, one on SQLite (the default) and one on the cluster's PostgreSQL, so the
record's share of the difference shows apart from the node hop's; no warm pool anywhere. Measured,
interleaved in a random order per round so load from anything else on the machine falls on all alike:

- exec round trip: ``POST /v1/shells/{id}/exec?wait=true`` running ``true``, through a control
  replica to a shell on the ``us-1`` node (another netns);
- create → first output: ``POST /v1/shells`` in region ``us`` and a streamed ``echo hi`` until its
  first output arrives (the shell is deleted afterwards, not timed).

Prints medians, p90, the difference and the ratio against one box (goals: < 5 ms added to an exec,
create → first output at most 1.5x). Then ``--spread`` creates (regions eu, eu, us in turn, 16 at a
time: a tenant's default vCPU quota), each deleted after its batch: where placement put them and the
creates per second.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess, serving
from tests.e2e.local_cluster import NODES, LocalCluster, local_cluster

from benchmarks.bench_node_rpc import create_to_output, exec_true, report, warm_and_measure

BATCH = 16
"""Creates in flight at once in the spread, and alive at once: a tenant's default quota is 16 vCPUs."""


def spread(cluster: LocalCluster, creates: int) -> None:
    regions = ["eu", "eu", "us"]
    placed: collections.Counter[str] = collections.Counter()
    creating_s = 0.0
    http = [
        httpx.Client(base_url=r.url, headers={"Authorization": f"Bearer {cluster.token}"}, timeout=300)
        for r in cluster.replicas
    ]

    def create(i: int) -> str:
        answer = http[i % len(http)].post("/v1/shells", json={"language": "bash", "region": regions[i % 3]})
        answer.raise_for_status()
        placed[answer.json()["node"]] += 1
        return str(answer.json()["id"])

    with ThreadPoolExecutor(BATCH) as pool:
        for start in range(0, creates, BATCH):
            began = time.perf_counter()
            made = list(pool.map(create, range(start, min(start + BATCH, creates))))
            creating_s += time.perf_counter() - began
            list(pool.map(lambda s: http[0].delete(f"/v1/shells/{s}").raise_for_status(), made))
    for client in http:
        client.close()
    print(f"\n{creates} creates over both replicas, {BATCH} at a time (regions eu, eu, us in turn)")
    print(f"{'node':<8} {'region':<8} {'shells':>7} {'share':>7}")
    for node, (region, _) in NODES.items():
        print(f"{node:<8} {region:<8} {placed[node]:>7} {placed[node] / creates:>7.1%}")
    eu = [placed[n] for n, (region, _) in NODES.items() if region == "eu"]
    print(f"eu balance (fewest / most on a node): {min(eu) / max(eu):.2f}")
    print(f"creates per second: {creates / creating_s:.1f} (create time only, {creating_s:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--creates", type=int, default=15)
    ap.add_argument("--spread", type=int, default=500)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-cluster-", dir="/var/tmp"))
    try:
        with local_cluster(root / "cluster") as cluster:
            on_pg = {"SHELLS_DATABASE_URL": cluster.postgres.new_database("onebox")}
            one_box = ServerProcess(root / "one-box", warm_pool=0)
            one_box_pg = ServerProcess(root / "one-box-pg", warm_pool=0, env=on_pg)
            replica = cluster.replicas[0]
            with serving(one_box, "bench-one-box"), serving(one_box_pg, "bench-one-box-pg"):
                targets = {  # name: (server URL, token, region of its shells)
                    "one box (in-process node)": (one_box.url, one_box.token, None),
                    "one box, record on PostgreSQL": (one_box_pg.url, one_box_pg.token, None),
                    "cluster: replica -> node in another netns": (replica.url, cluster.token, "us"),
                    "cluster: load balancer -> replica -> node": (cluster.base_url, cluster.token, "us"),
                }
                execs, creates, made = {}, {}, []
                for name, (url, token, region) in targets.items():
                    http = httpx.Client(
                        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
                    )
                    body = {"language": "bash"} | ({"region": region} if region else {})
                    shell = http.post("/v1/shells", json=body).json()["id"]
                    execs[name] = exec_true(http, shell)
                    creates[name] = create_to_output(http, region)
                    made.append((http, shell))
                exec_results, create_results = warm_and_measure(execs, creates, args.runs, args.creates)
                for http, shell in made:
                    http.delete(f"/v1/shells/{shell}")
                    http.close()
            load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
            print(f"load average {load} (shared 2-core machine); {args.runs} execs, {args.creates} creates")
            report("exec round trip (true, wait=true)", exec_results)
            report("create -> first output (no warm pool)", create_results)
            spread(cluster, args.spread)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
