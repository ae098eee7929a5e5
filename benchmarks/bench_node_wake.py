"""Wake on request through a node agent's ingress proxy against the same on one box, in one run.

    python -m benchmarks.bench_node_wake [--runs 8]

Starts a one-box server and, beside it, a node agent on its own "machine" (its own network
namespace behind a bridge, ``tests.e2e.node_link``) under a control plane in another process; no
warm pool. On each, one microvm serving HTTP on an exposed public port. Each round, on both in
turn, pauses the shell and times one GET to the paused shell until its first byte (wake on
request: the node's path is proxy → held ``new_wakes`` call → the control plane's resume → the
table sent back → forwarded), then one GET to the running shell. Prints medians and the node's
figures against one box's (``control.node_ports``, docs/cluster.md).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess, serving
from tests.e2e.node_link import cluster_secret, node_machine
from tests.e2e.test_wake import PORT, SERVE


def first_byte(url: str, host: str | None = None) -> float:
    """Seconds from sending a GET to the first byte of its (200) answer."""
    headers = {"Host": host} if host else {}
    start = time.perf_counter()
    with httpx.stream("GET", url, headers=headers, timeout=300) as r:
        next(r.iter_raw(1))
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, r.status_code
    return elapsed


def serving_vm(server: ServerProcess) -> tuple[httpx.Client, str, str]:
    """The API client, the shell's id and its port's URL."""
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=300)
    body = {"language": "python", "runtime": "microvm", "network": "localhost", "idle_timeout_s": 0}
    sid = api.post("/v1/shells", json=body).raise_for_status().json()["id"]
    api.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"command": SERVE}).raise_for_status()
    url = (
        api.post(f"/v1/shells/{sid}/ports", json={"port": PORT, "public": True})
        .raise_for_status()
        .json()["url"]
    )
    return api, sid, str(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="shells-bench-node-wake-", dir="/var/tmp"))
    try:
        with contextlib.ExitStack() as stack:
            box = stack.enter_context(serving(ServerProcess(data / "box", warm_pool=0), "bench-wake-box"))
            node = stack.enter_context(node_machine(data / "node", cluster_secret(data)))
            node.start("node-a", {"SHELLS_CLASSES": "microvm", "SHELLS_INGRESS_HOST": node.address})
            env = {"SHELLS_NODES": node.url, "SHELLS_CLUSTER_SECRET_FILE": str(node.secret_file)}
            control = ServerProcess(data / "control", warm_pool=0, env=env)
            stack.enter_context(serving(control, "bench-wake-control"))
            box_api, box_id, _ = serving_vm(box)
            node_api, node_id, node_url = serving_vm(control)
            box_get = partial(
                first_byte, f"http://127.0.0.1:{box.ingress_port}/", f"{PORT}-{box_id}.localhost"
            )
            legs: dict[str, tuple[httpx.Client, str, Callable[[], float]]] = {
                "one box": (box_api, box_id, box_get),
                "through a node": (node_api, node_id, partial(first_byte, node_url)),
            }
            results: dict[str, list[float]] = {}
            for api, sid, get in legs.values():  # the first pause of a restored VM writes its RAM
                api.post(f"/v1/shells/{sid}/actions/pause").raise_for_status()
                get()
            for _ in range(args.runs):
                for name, (api, sid, get) in legs.items():
                    api.post(f"/v1/shells/{sid}/actions/pause").raise_for_status()
                    time.sleep(1.2)  # past a pass: the node's table has it paused either way
                    results.setdefault(f"wake on request, {name}", []).append(get())
                    results.setdefault(f"running, {name}", []).append(get())
            for api, sid, _ in legs.values():
                api.delete(f"/v1/shells/{sid}").raise_for_status()
                api.close()
        print(f"\ntime to first byte of a GET, microvm ({args.runs} runs each, alternating)")
        print(f"{'path':<34} {'median ms':>10}  vs one box")
        for name, values in results.items():
            med = statistics.median(values)
            base = statistics.median(results[name.replace("through a node", "one box")])
            print(f"{name:<34} {med * 1e3:>10.1f}  {med / base:.2f}x ({(med - base) * 1e3:+.1f} ms)")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
