"""The once-a-second drain of refused attempts at a given number of shells: every shell's counters
(the walk every drain made before ``dropped``) against only the shells that refused something.

    python -m benchmarks.bench_drain [--shells 300] [--runs 30]

One HostNetwork with ``--shells`` shells attached (sealed but one) (their per-shell sets and chains, as in
a running server), one of which refuses a packet before each round. In one process, alternating per
round: ``every shell`` forces the listing of the whole table (what a run's first drain still does),
``dropped only`` is the drain as it runs from then on. Prints the median wall and CPU time of one
drain (libnftables runs in this process, so its CPU is counted) and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.netprobe import inside

from shells.domain.network import NetworkAccess, NetworkMode
from shells.runtime.host import netns
from shells.runtime.network.dataplane import HostNetwork
from shells.settings import Settings

SEALED = NetworkAccess(NetworkMode.SEALED)
LISTED = NetworkAccess(NetworkMode.INTERNET, ("203.0.113.10",))
"""The shell that refuses: it needs a port (a sealed shell has none, its packets never leave)."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shells", type=int, default=300)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shells-bench-drain-", dir="/var/tmp"))
    network = HostNetwork(Settings(data_dir=work / "data"))
    network.prepare()
    (work / "ns").mkdir()
    attached: list[tuple[str, str]] = []
    try:
        for i in range(args.shells):
            path = str(work / "ns" / f"d{i}")
            netns.create_sealed_netns(path)
            network.attach(f"d{i}", path, LISTED if i == 0 else SEALED)
            attached.append((f"d{i}", path))
        noisy = attached[0][1]

        def refuse() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"x", ("198.51.100.10", 9))

        times: dict[str, list[tuple[float, float]]] = {"drain, every shell": [], "drain, dropped only": []}
        network.drain_blocked()
        for _ in range(args.runs):
            for name, values in times.items():
                inside(noisy, refuse)
                if name == "drain, every shell":
                    network._drained_all = False
                wall, cpu = time.perf_counter(), time.process_time()
                drained = network.drain_blocked()
                values.append((time.perf_counter() - wall, time.process_time() - cpu))
                assert [a.count for _, a in drained] == [1], drained
    finally:
        for host_id, path in attached:
            network.detach(host_id)
            netns.remove_netns(path)
        network.purge()
        shutil.rmtree(work, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"{args.shells} shells, one refusing a packet per drain, {args.runs} rounds; load {load}")
    print_wall_and_cpu(times)


def print_wall_and_cpu(times: dict[str, list[tuple[float, float]]]) -> None:
    """Median wall and CPU time (seconds in, ms out) of each variant, and its ratio to the first."""
    base = next(iter(times.values()))
    base_wall, base_cpu = statistics.median(w for w, _ in base), statistics.median(c for _, c in base)
    for name, measured in times.items():
        wall, cpu = statistics.median(w for w, _ in measured), statistics.median(c for _, c in measured)
        print(
            f"{name:<40} wall {wall * 1000:8.2f} ms ({wall / base_wall:.3f}x)"
            f"   CPU {cpu * 1000:8.2f} ms ({cpu / base_cpu:.3f}x)"
        )


if __name__ == "__main__":
    main()
