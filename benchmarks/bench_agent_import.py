"""The agent's start inside a shell is its runtime's interpreter importing the agent: this tree's
agent against another revision's, each in an agent runtime built from its own sources.

    python -m benchmarks.bench_agent_import [--baseline REV] [--runs 30]

Builds both runtimes (``runtime/agent_runtime.build``, the guest package taken from ``git archive
REV``), then alternates ``python -I -S -c 'import guest.agent'`` through each runtime's loader, as
the container backend starts it, and prints the median wall time and CPU time (user + system of the
child) of each and the ratio.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

from benchmarks.bench_drain import print_wall_and_cpu
from benchmarks.bench_exec_ab import extract
from shells.runtime import agent_runtime


def runtime_python(guest: Path, into: Path) -> list[str]:
    """The interpreter command of an agent runtime built from the guest package at ``guest``."""
    with mock.patch.object(agent_runtime, "guest_dir", return_value=guest):
        agent_runtime.build(into)
    argv = agent_runtime.load(into).argv(str(into), "--listen-fd", "3")
    return argv[: argv.index("-m")]


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="HEAD")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-agent-import-", dir="/var/tmp"))
    try:
        old_guest = extract(args.baseline, root / "old") / "shells" / "guest"
        variants = {
            f"import guest.agent, {args.baseline}": runtime_python(old_guest, root / "rt-old"),
            "import guest.agent, this tree": runtime_python(agent_runtime.guest_dir(), root / "rt-new"),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, python in variants.items():
                wall, cpu = time.perf_counter(), child_cpu_s()
                subprocess.run([*python, "-c", "import guest.agent"], check=True)
                times[name].append((time.perf_counter() - wall, child_cpu_s() - cpu))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"{args.runs} runs each, alternating; load average {load}")
    print_wall_and_cpu(times)


if __name__ == "__main__":
    main()
