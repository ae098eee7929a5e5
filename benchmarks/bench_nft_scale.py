"""One shell's nftables attach and detach, with N other shells' objects in the table.

    python -m benchmarks.bench_nft_scale [--steps 0,250,500,1000] [--baseline REV]

Runs in a network namespace of its own (``unshare -n``), so the host's ruleset is neither touched
nor read: the table holds what the dataplane would hold for the given number of sealed shells (its
base, then each shell's sets, chains and port entries), and at each step ten more shells are
attached and detached with the batches ``HostNetwork.attach`` and ``detach`` send, timed (medians).
With ``--baseline REV`` the same runs with ``git archive REV src`` first, in a namespace of its own
(its attach as that revision sent it: two batches where the ports' entries went in apart).
"""

from __future__ import annotations

import argparse
import inspect
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_exec_ab import extract

INNER = "SHELLS_BENCH_NFT_INNER"


def measure(steps: list[int]) -> None:
    """Inside the private netns: grow the table and time attach and detach at each step."""
    from shells.domain.network import NetworkAccess, NetworkMode
    from shells.runtime.network.dataplane import HostNetwork
    from shells.runtime.network.libnftables import Nftables
    from shells.runtime.network.ruleset import Ruleset

    one_batch = "objects" in inspect.signature(HostNetwork._converge).parameters

    rules = Ruleset("bench", ipaddress.IPv4Address("10.77.0.1"), ipaddress.IPv4Network("10.77.0.0/16"))
    nft, sealed = Nftables(), NetworkAccess(NetworkMode.SEALED)
    nft.run(rules.base() + rules.reset_shared())

    def port(slot: int) -> list[tuple[str, int, ipaddress.IPv4Address]]:
        return [(f"shbench{slot:05x}", slot, rules.cidr[2 + slot])]

    def attach(slot: int) -> None:
        objects = (
            rules.shell_objects(slot)
            + rules.shell_chain(slot, sealed)
            + rules.shell_allow(slot, sealed)
            + rules.shell_egress(slot, False)
        )
        if one_batch:
            nft.run(objects + rules.ports_change("add", port(slot)))
        else:  # the port's entries went in after the port was made
            nft.run(objects)
            nft.run(rules.ports_change("add", port(slot)))

    def detach(slot: int) -> None:
        batch = rules.ports_change("delete", port(slot))
        batch += "".join(rules.drop_objects(name) for name in rules.shell_object_names(slot))
        nft.run(batch + rules.forget_dropped(slot))

    count = 0
    for step in steps:
        while count < step:
            attach(count)
            count += 1
        attached, detached = [], []
        for slot in range(20000, 20010):
            t = time.perf_counter()
            attach(slot)
            attached.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            detach(slot)
            detached.append((time.perf_counter() - t) * 1000)
        print(
            f"{os.environ[INNER]:<10} {step:>7} shells: attach {statistics.median(attached):8.2f} ms"
            f"  detach {statistics.median(detached):8.2f} ms",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default="0,250,500,1000")
    ap.add_argument("--baseline", help="also run this revision's ruleset, first")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    if INNER in os.environ:
        measure(steps)
        return
    runs = {"this tree": str(Path(__file__).resolve().parent.parent / "src")}
    with tempfile.TemporaryDirectory(prefix="shells-bench-nft-", dir="/var/tmp") as tmp:
        if args.baseline:
            runs = {args.baseline: str(extract(args.baseline, Path(tmp) / "old"))} | runs
        for name, src in runs.items():
            env = os.environ | {INNER: name, "PYTHONPATH": f"{src}:{Path(__file__).resolve().parent.parent}"}
            argv = [sys.executable, "-m", "benchmarks.bench_nft_scale", "--steps", args.steps]
            subprocess.run(["unshare", "-n", *argv], env=env, check=True)


if __name__ == "__main__":
    main()
