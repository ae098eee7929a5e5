"""Container-class latency: ours against baselines run in the same process, round-robin.

    python -m benchmarks.bench_container [--runs 30]

Measures, medians over ``--runs``:
- create → first output of ``echo hi`` through REST (warm pool hit, and a cold create that misses
  the pool), against ``podman run --rm`` of the same template and a plain fork/exec floor;
- exec round trip of ``true`` through REST in a running shell, against ``crun exec`` into the same
  container and a plain fork/exec;
- the time ``DELETE /v1/shells/{id}`` takes to answer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

from shells.runtime.container.backend import BASE_TEMPLATE
from shells.runtime.images import build_rootfs_tarball
from shells.settings import Settings

PODMAN_IMAGE = "localhost/shells-bench-base:latest"
# This host's root lacks CAP_SYS_RESOURCE, so podman's default rlimits (above the hard limit) fail.
PODMAN_RUN = [
    "podman",
    "run",
    "--rm",
    "--network=none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
]


def ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def first_output(http: httpx.Client, body: dict[str, object]) -> str:
    """Create a shell and stream ``echo hi`` until the first stdout chunk; return the shell id."""
    r = http.post("/v1/shells", json=body)
    r.raise_for_status()
    sid = str(r.json()["id"])
    with http.stream("POST", f"/v1/shells/{sid}/exec", json={"cmd": ["echo", "hi"]}) as s:
        for line in s.iter_lines():
            if json.loads(line).get("type") == "stdout":
                break
    return sid


def podman_ready(cache_dir: Path) -> bool:
    if shutil.which("podman") is None:
        return False
    have = subprocess.run(["podman", "image", "exists", PODMAN_IMAGE], check=False).returncode == 0
    if not have:
        tarball = build_rootfs_tarball(cache_dir, BASE_TEMPLATE)
        subprocess.run(["podman", "import", str(tarball), PODMAN_IMAGE], check=True, capture_output=True)
    return True


def table(rows: list[tuple[str, list[float]]], baseline: dict[str, str]) -> str:
    med = {name: statistics.median(v) for name, v in rows}
    out = [f"{'measurement':<46} {'median ms':>10} {'min ms':>8}  ratio"]
    for name, values in rows:
        ratio = ""
        if name in baseline:
            ratio = f"{med[baseline[name]] / med[name]:.1f}x faster than {baseline[name]}"
        out.append(f"{name:<46} {med[name]:>10.2f} {min(values):>8.2f}  {ratio}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-", dir="/var/tmp"))
    server = ServerProcess(root / "data", warm_pool=2)
    server.start()
    settings = Settings.from_env()
    use_podman = podman_ready(settings.cache_dir)
    results: dict[str, list[float]] = {
        k: []
        for k in (
            "create+echo hi, REST (warm pool)",
            "create+echo hi, REST (cold, pool miss)",
            "podman run --rm echo hi",
            "fork/exec sh -c 'echo hi'",
            "exec true, REST round trip",
            "crun exec true",
            "fork/exec true",
            "DELETE /v1/shells/{id} answers",
        )
    }
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
        ) as http:
            resident = str(http.post("/v1/shells", json={"language": "bash"}).json()["id"])
            crun_root = str(Settings(data_dir=server.data_dir).run_dir / "crun")
            http.post(f"/v1/shells/{resident}/exec", params={"wait": "true"}, json={"cmd": ["true"]})
            for _ in range(args.runs):
                server.wait_pool_ready()
                sid = ""

                def warm() -> None:
                    nonlocal sid
                    sid = first_output(http, {"language": "python"})  # the pool keeps python:1 shells

                results["create+echo hi, REST (warm pool)"].append(ms(warm))
                results["DELETE /v1/shells/{id} answers"].append(
                    ms(lambda sid=sid: http.delete(f"/v1/shells/{sid}"))  # type: ignore[misc]
                )

                def cold() -> None:
                    nonlocal sid
                    sid = first_output(http, {"language": "python", "shape": "s-1vcpu-1gb"})

                results["create+echo hi, REST (cold, pool miss)"].append(ms(cold))
                http.delete(f"/v1/shells/{sid}")
                if use_podman:
                    results["podman run --rm echo hi"].append(
                        ms(
                            lambda: subprocess.run(
                                [*PODMAN_RUN, PODMAN_IMAGE, "echo", "hi"],
                                check=True,
                                capture_output=True,
                            )
                        )
                    )
                results["fork/exec sh -c 'echo hi'"].append(
                    ms(lambda: subprocess.run(["sh", "-c", "echo hi"], check=True, capture_output=True))
                )
            # The exec phase runs after the create phase so neither pays for the other's background work
            # (pool refills, podman's clean-up); within a phase the variants alternate.
            server.wait_pool_ready()
            for _ in range(5 * args.runs):
                results["exec true, REST round trip"].append(
                    ms(
                        lambda: http.post(
                            f"/v1/shells/{resident}/exec", params={"wait": "true"}, json={"cmd": ["true"]}
                        )
                    )
                )
                results["crun exec true"].append(
                    ms(
                        lambda: subprocess.run(
                            ["crun", "--root", crun_root, "exec", resident, "true"], check=True
                        )
                    )
                )
                results["fork/exec true"].append(ms(lambda: subprocess.run(["true"], check=True)))
            http.delete(f"/v1/shells/{resident}")
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)
    rows = [(k, v) for k, v in results.items() if v]
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"runs: {args.runs} (exec rows: {5 * args.runs}); load average {load}")
    print(
        table(
            rows,
            {
                "create+echo hi, REST (warm pool)": "podman run --rm echo hi",
                "create+echo hi, REST (cold, pool miss)": "podman run --rm echo hi",
                "exec true, REST round trip": "crun exec true",
            },
        )
    )


if __name__ == "__main__":
    main()
