"""microvm fork x4 of this tree against another revision, alternating on one host.

    python -m benchmarks.bench_microvm_fork [--baseline REV] [--runs 6]

Starts one server from this tree and, with ``--baseline``, one from ``git archive REV src``
(both from a copy of their ``src``, alike; no warm pools). Each gets a running ``python``
microvm shell that has run one command (the template is pre-booted once, not timed). Then, in
rounds whose server order is random (load from anything else on the host falls on both alike):
a fork x4 of that shell until all four children answered ``echo`` (asked at once, as a caller
that wants them all would; odd rounds ask them one after the other), then the children are
deleted. Prints medians per server and their ratio, and after the last round, with four
children left idle for 5 s: PSS per idle fork (``smaps_rollup``), of which the TCG code buffer
(the anonymous mapping of ``tb-size``), and each child's second command (translated paths).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.e2e.harness import ServerProcess

from benchmarks.bench_exec_ab import copy_tree, extract
from benchmarks.bench_microvm import first_output, pss_mb, qemu_pid
from shells.sdk import Shell
from shells.settings import Settings

ENV = {"SHELLS_QUOTA_MAX_VCPUS": "40", "SHELLS_QUOTA_MAX_SHELLS": "40"}
CODE_BUFFER_MIN_KB = 1024
"""The TCG code buffer is one anonymous mapping of ``tb-size`` MiB (QEMU 7.2 maps it whole, with
guard pages): the largest of its anonymous executable mappings."""


def code_buffer_mb(pid: int) -> float:
    """PSS of the TCG code buffer: the largest executable anonymous mapping of QEMU."""
    best = 0
    size_kb, executable, anonymous = 0, False, False
    for line in Path(f"/proc/{pid}/smaps").read_text(encoding="utf-8").splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5:  # a mapping's header: range perms offset dev inode [path]
            size_kb, executable, anonymous = 0, "x" in head[1], len(head) == 5
            start, end = (int(x, 16) for x in head[0].split("-"))
            size_kb = (end - start) // 1024
        elif head[0] == "Pss:" and executable and anonymous and size_kb >= CODE_BUFFER_MIN_KB:
            best = max(best, int(head[1]))
    return best / 1024


def fork_round(parent: Shell, at_once: bool) -> tuple[float, list[Shell]]:
    clock = time.perf_counter()
    kids = parent.fork(4)
    if at_once:
        with ThreadPoolExecutor(len(kids)) as pool:
            list(pool.map(first_output, kids))
    else:
        for kid in kids:
            first_output(kid)
    return time.perf_counter() - clock, kids


def second_command_ms(kid: Shell) -> float:
    clock = time.perf_counter()
    first_output(kid)
    return (time.perf_counter() - clock) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="also run a server from this revision's src, alternating")
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-fork-", dir="/var/tmp"))
    new_src = copy_tree(root / "new")
    current = ServerProcess(root / "current", warm_pool=0, env={**ENV, "PYTHONPATH": str(new_src)})
    servers = {"this tree": current}
    if args.baseline:
        old_src = extract(args.baseline, root / "old")
        env = {**ENV, "PYTHONPATH": str(old_src)}
        servers[args.baseline] = ServerProcess(root / "base", warm_pool=0, env=env)
    clients = []
    try:
        parents: dict[str, Shell] = {}
        for name, server in servers.items():
            server.start()
            client = server.client()
            clients.append(client)
            parents[name] = client.create("python", runtime="microvm", idle_timeout_s=0, network="sealed")
            first_output(parents[name])
        times: dict[str, dict[bool, list[float]]] = {name: {True: [], False: []} for name in servers}
        last: dict[str, list[Shell]] = {}
        for i in range(args.runs):
            order = list(servers)
            random.shuffle(order)
            for name in order:
                took, kids = fork_round(parents[name], at_once=i % 2 == 0)
                times[name][i % 2 == 0].append(took)
                if i == args.runs - 1:
                    last[name] = kids
                else:
                    for kid in kids:
                        kid.kill()
        time.sleep(5)  # let the last children settle before measuring their idle cost
        idle: dict[str, tuple[list[float], list[float], list[float]]] = {}
        for name, kids in last.items():
            run_dir = Settings(data_dir=servers[name].data_dir).run_dir
            pids = [qemu_pid(run_dir, k.id) for k in kids]
            idle[name] = ([pss_mb(p) for p in pids], [code_buffer_mb(p) for p in pids],
                          [second_command_ms(k) for k in kids])  # fmt: skip
        load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3]
        print(f"runs: {args.runs}, load average {' '.join(load)} (at the end)")
        first = next(iter(servers))
        labels = {True: "fork x4 -> all answer (asked at once)", False: "fork x4 -> all answer (one by one)"}
        for at_once, label in labels.items():
            ref = statistics.median(times[first][at_once]) if times[first][at_once] else 0.0
            for name in servers:
                values = times[name][at_once]
                if not values:
                    continue
                med = statistics.median(values)
                ratio = f"  this tree / this: {ref / med:.2f}x" if name != first and ref else ""
                spread = f"min {min(values):.3f}, max {max(values):.3f}, n={len(values)}"
                print(f"{label:<40} {name:<12} median {med:6.3f} s ({spread}){ratio}")
        for name, (pss, code, second) in idle.items():
            code_mb = statistics.median(code)
            spread = f"TCG code buffer {code_mb:.1f} MB; min {min(pss):.1f}, max {max(pss):.1f}"
            print(f"{'PSS per idle fork':<40} {name:<12} median {statistics.median(pss):6.1f} MB ({spread})")
            print(f"{'second command of a fork':<40} {name:<12} median {statistics.median(second):6.1f} ms")
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.purge()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
