"""What the TypeScript SDK adds per call over a raw ``fetch`` of the same request.

    python -m benchmarks.bench_sdk_ts [--runs 300]

Starts a real server and one bash shell, builds sdk-ts/ (``npm ci`` from the lockfile when it changed,
``tsc``), and runs benchmarks/bench_sdk_ts.mjs in one Node process: each SDK call against the fetch
it makes (``GET /v1/shells/{id}``, an exec of ``true`` with ``?wait=true``, the same exec streamed as
NDJSON), alternating which goes first. Prints medians, their difference and ratio, and the median of
the paired differences.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.e2e.harness import ServerProcess
from tests.e2e.sdk_ts import REPO, SDK_TS, build

from shells import Shells


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    toolchain = build()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-sdk-ts-", dir="/var/tmp"))
    # The token's rate limit would refuse the tight loops measured here; it is not what they measure.
    unlimited = {"SHELLS_RATE_LIMIT_PER_S": "1000000", "SHELLS_RATE_LIMIT_BURST": "1000000"}
    server = ServerProcess(root / "data", warm_pool=0, env=unlimited)
    server.start()
    try:
        with Shells(server.url, server.token) as client, client.create("bash") as shell:
            done = toolchain.run(
                "node",
                str(REPO / "benchmarks" / "bench_sdk_ts.mjs"),
                timeout=1800,
                SHELLS_BASE_URL=server.url,
                SHELLS_API_TOKEN=server.token,
                SHELLS_SDK_DIST=str(SDK_TS / "packages" / "sdk" / "dist" / "index.js"),
                BENCH_SHELL=shell.id,
                BENCH_RUNS=str(args.runs),
            )
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"load average {load}")
    print(done.stdout, end="")


if __name__ == "__main__":
    main()
