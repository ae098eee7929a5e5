"""What the network dataplane adds to create and teardown, what its choices save, and NAT throughput.

    python -m benchmarks.bench_network [--runs 20] [--seconds 3]

In one process, alternating so load hits every variant alike:
- ``attach internet`` / ``detach``: HostNetwork on a fresh netns (veth, addresses, routes, nft
  objects), against the baseline ``ip netns add`` / ``ip netns del`` (what a bare namespace costs
  through the usual tool). ``detach`` returns once the shell's rules are gone; ``... until host
  clean`` adds the wait for the background deletion of its veth and conntrack entries;
- ``attach sealed``: the warm pool's case (nft objects only, no port);
- the same per-shell nft batch through libnftables against ``nft -f -``, and the port set-up through
  rtnetlink against the equivalent ``ip`` commands;
- iperf3 (TCP, one stream) from a shell through the host's NAT into the fake internet's namespace,
  against iperf3 from the host over the same veth without NAT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.fake_internet import FakeInternet

from shells.domain.network import NetworkAccess, NetworkMode
from shells.runtime.host import netns
from shells.runtime.network.dataplane import HostNetwork
from shells.settings import Settings

INTERNET = NetworkAccess(NetworkMode.INTERNET)
SEALED = NetworkAccess(NetworkMode.SEALED)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def iperf(client_netns: str | None, server_netns: str, address: str, seconds: int) -> float:
    """Gbit/s of one TCP stream from ``client_netns`` (None: the host) to a server in ``server_netns``."""
    server = subprocess.Popen(
        ["nsenter", f"--net={server_netns}", "iperf3", "-s", "-1", "-B", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        prefix = [] if client_netns is None else ["nsenter", f"--net={client_netns}"]
        out = subprocess.run(
            [*prefix, "iperf3", "-c", address, "-t", str(seconds), "-J"],
            capture_output=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.kill()
        server.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=3)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="shells-bench-net-", dir="/var/tmp"))
    os.environ["SHELLS_RUN_DIR"] = str(top / "run")
    nsdir = top / "ns"
    nsdir.mkdir()
    netns.ensure_private_mount(str(nsdir))
    network = HostNetwork(Settings(data_dir=top / "data"))
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "ip netns add",
            "ip netns del",
            "create netns (ours)",
            "attach internet",
            "attach sealed",
            "detach internet",
            "detach + remove netns",
            "... until host clean",
            "nft batch libnftables",
            "nft batch nft -f -",
            "port via rtnetlink",
            "port via ip commands",
        )
    }
    rates: dict[str, float] = {}
    try:
        network.prepare()
        rules = network.rules
        with FakeInternet() as internet:
            for i in range(args.runs):
                name = f"shbench{os.getpid() % 1000}-{i}"
                times["ip netns add"].append(
                    timed(lambda n=name: subprocess.run(["ip", "netns", "add", n], check=True))
                )
                times["ip netns del"].append(
                    timed(lambda n=name: subprocess.run(["ip", "netns", "del", n], check=True))
                )

                path = str(nsdir / f"b{i}")
                times["create netns (ours)"].append(timed(lambda p=path: netns.create_sealed_netns(p)))
                times["attach internet"].append(
                    timed(lambda p=path, h=f"b{i}": network.attach(h, p, INTERNET))
                )
                times["detach internet"].append(timed(lambda h=f"b{i}": network.detach(h)))
                network.attach(f"b{i}", path, INTERNET)

                def teardown(h: str = f"b{i}", p: str = path) -> None:
                    network.detach(h)
                    netns.remove_netns(p)

                times["detach + remove netns"].append(timed(teardown))
                times["... until host clean"].append(
                    times["detach + remove netns"][-1] + timed(network.settle)
                )

                sealed = str(nsdir / f"s{i}")
                netns.create_sealed_netns(sealed)
                times["attach sealed"].append(timed(lambda p=sealed, h=f"s{i}": network.attach(h, p, SEALED)))
                network.detach(f"s{i}")
                netns.remove_netns(sealed)

                batch = rules.shell_objects(9000 + i) + rules.shell_chain(9000 + i, INTERNET)
                times["nft batch libnftables"].append(timed(lambda b=batch: network.nft.run(b)))
                network.nft.run("".join(rules.drop_objects(n) for n in rules.shell_object_names(9000 + i)))
                times["nft batch nft -f -"].append(
                    timed(lambda b=batch: subprocess.run(["nft", "-f", "-"], input=b.encode(), check=True))
                )
                network.nft.run("".join(rules.drop_objects(n) for n in rules.shell_object_names(9000 + i)))

                times["port via rtnetlink"].append(_port_rtnetlink(network, nsdir / f"r{i}"))
                times["port via ip commands"].append(_port_ip_commands(network, nsdir / f"c{i}"))
            path = str(nsdir / "iperf")
            netns.create_sealed_netns(path)
            network.attach("iperf", path, INTERNET)
            rates["shell -> NAT -> fake internet"] = iperf(
                path, internet.netns_path, internet.a, args.seconds
            )
            rates["host -> fake internet (no NAT)"] = iperf(
                None, internet.netns_path, internet.a, args.seconds
            )
            network.detach("iperf")
            netns.remove_netns(path)
    finally:
        network.purge()
        for leftover in nsdir.iterdir():  # after a failure part-way
            netns.remove_netns(str(leftover))
        netns.release_private_mount(str(nsdir))
        shutil.rmtree(top, ignore_errors=True)
    _report(times, rates, args.runs)


def _port_rtnetlink(network: HostNetwork, path: Path) -> float:
    """Time one uplink port as the dataplane makes it (attach minus the nft work is most of it)."""
    netns.create_sealed_netns(str(path))
    try:
        return timed(lambda: network.attach("port", str(path), INTERNET))
    finally:
        network.detach("port")
        netns.remove_netns(str(path))


def _port_ip_commands(network: HostNetwork, path: Path) -> float:
    """The same port, addresses and routes with ``ip`` (the nft part left out, so this flatters it)."""
    netns.create_sealed_netns(str(path))
    gw = network.range.gateway
    address = network.range.uplink_address(60000)
    host_if = f"shbench{os.getpid() % 10000}"
    ns = ["nsenter", f"--net={path}", "ip"]
    steps = [
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", str(path)],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "route", "add", f"{address}/32", "dev", host_if, "src", str(gw)],
        [*ns, "addr", "add", f"{address}/32", "dev", "eth0"],
        [*ns, "link", "set", "eth0", "up"],
        [*ns, "link", "set", "lo", "up"],
        [*ns, "neigh", "add", str(gw), "lladdr", "02:73:68:00:00:01", "dev", "eth0", "nud", "permanent"],
        [*ns, "route", "add", "default", "via", str(gw), "dev", "eth0", "onlink"],
    ]
    try:
        return timed(lambda: [subprocess.run(step, check=True) for step in steps])
    finally:
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        netns.remove_netns(str(path))


def _report(times: dict[str, list[float]], rates: dict[str, float], runs: int) -> None:
    print(f"network dataplane, runs: {runs} (medians; ratio against the baseline of its group)")
    baselines = {
        "ip netns add": "ip netns add",
        "ip netns del": "ip netns del",
        "create netns (ours)": "ip netns add",
        "attach internet": "ip netns add",
        "attach sealed": "ip netns add",
        "detach internet": "ip netns del",
        "detach + remove netns": "ip netns del",
        "... until host clean": "ip netns del",
        "nft batch libnftables": "nft batch nft -f -",
        "nft batch nft -f -": "nft batch nft -f -",
        "port via rtnetlink": "port via ip commands",
        "port via ip commands": "port via ip commands",
    }
    print(f"{'operation':<24} {'median ms':>10} {'max ms':>8}  vs baseline")
    for name, values in times.items():
        med, base = statistics.median(values), statistics.median(times[baselines[name]])
        print(f"{name:<24} {med:>10.2f} {max(values):>8.2f}  {med / base:>5.2f}x {baselines[name]}")
    for name, gbits in rates.items():
        print(f"iperf3 {name:<34} {gbits:>6.2f} Gbit/s")


if __name__ == "__main__":
    main()
