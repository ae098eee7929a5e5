"""Wake on request against an explicit resume, through a real server and a real microvm.

    python -m benchmarks.bench_wake [--runs 10]

Starts its own server (no warm pool) and one microvm shell serving HTTP on an exposed public port.
Each run pauses the shell, then alternately times, in the same run:
- wake on request: one GET through the ingress proxy to the paused shell, until its first byte;
- explicit resume, then request: ``POST …/actions/resume`` and then the same GET, until its first
  byte (the baseline: what a client had to do before wake on request);
- a GET to the running shell (what the proxy costs once the shell is up).
Prints medians and the ratio of each to the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess
from tests.e2e.test_wake import PORT, SERVE


def first_byte(web: httpx.Client, host: str) -> float:
    """Seconds from sending the request to its first byte of answer."""
    start = time.perf_counter()
    with web.stream("GET", "/", headers={"Host": host}) as r:
        next(r.iter_raw(1))
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, r.status_code
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="shells-bench-wake-", dir="/var/tmp"))
    server = ServerProcess(data / "srv", warm_pool=0)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.token}"}
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=300) as api,
            httpx.Client(base_url=f"http://127.0.0.1:{server.ingress_port}", timeout=300) as web,
        ):
            body = {"language": "python", "runtime": "microvm", "network": "localhost", "idle_timeout_s": 0}
            shell = api.post("/v1/shells", json=body).raise_for_status().json()
            sid = shell["id"]
            api.post(
                f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"command": SERVE}
            ).raise_for_status()
            api.post(f"/v1/shells/{sid}/ports", json={"port": PORT, "public": True}).raise_for_status()
            host = f"{PORT}-{sid}.localhost"
            results: dict[str, list[float]] = {
                "wake on request": [],
                "resume, then request": [],
                "running": [],
            }

            def pause() -> None:
                api.post(f"/v1/shells/{sid}/actions/pause").raise_for_status()

            def explicit() -> float:
                start = time.perf_counter()
                api.post(f"/v1/shells/{sid}/actions/resume").raise_for_status()
                return time.perf_counter() - start + first_byte(web, host)

            pause()  # the first pause of a restored VM writes its RAM; not part of any timing
            explicit()
            for _ in range(args.runs):
                pause()
                results["wake on request"].append(first_byte(web, host))
                results["running"].append(first_byte(web, host))
                pause()
                results["resume, then request"].append(explicit())
            api.delete(f"/v1/shells/{sid}").raise_for_status()
        base = statistics.median(results["resume, then request"])
        print(f"\ntime to first byte, microvm ({args.runs} runs each, alternating)")
        print(f"{'path':<24} {'median ms':>10}  vs resume, then request")
        for name, values in results.items():
            med = statistics.median(values)
            print(f"{name:<24} {med * 1e3:>10.1f}  {med / base:.2f}x ({(med - base) * 1e3:+.1f} ms)")
    finally:
        server.purge()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
