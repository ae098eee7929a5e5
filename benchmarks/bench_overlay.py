"""What a private network across nodes costs: two members on different nodes (through the VXLAN
overlay, across the nodes' links) against two members on one node, in one run.

    python -m benchmarks.bench_overlay [--rounds 7] [--trips 300]

Two node agents, each in its own network namespace behind its own bridge, and a control plane.
Shell ``x`` (node 1) talks to ``y`` (node 2, over the overlay) and to ``w`` (node 1, the one-box
path), in a random order per round so load from anything else falls on both alike. Measured inside
``x``: the median TCP round trip of a one-byte ping-pong over one connection (``--trips`` per
round), and the throughput of a 20 MB transfer; and the same between the two nodes' own network
namespaces (the underlay: no shell, no VXLAN). Prints medians over the rounds and the ratio of each
figure to the one-node one.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess, serving
from tests.e2e.node_link import NodeMachine, cluster_secret, node_machine

SERVER = """
import socket, threading
def echo(c):
    while True:
        d = c.recv(64)
        if not d:
            return
        c.sendall(d)
def bulk(c):
    c.sendall(b"x" * 20_000_000)
    c.close()
def serve(port, fn):
    s = socket.create_server(("0.0.0.0", port))
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(7100, echo)).start()
serve(7101, bulk)
"""

CLIENT = """
import socket, statistics, sys, time
host, trips = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, 7100))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts = []
for _ in range(trips):
    t = time.perf_counter()
    s.sendall(b"x")
    s.recv(1)
    rtts.append((time.perf_counter() - t) * 1e6)
s.close()
b = socket.create_connection((host, 7101))
t, got = time.perf_counter(), 0
while True:
    d = b.recv(1 << 16)
    if not d:
        break
    got += len(d)
print(statistics.median(rtts), got / (time.perf_counter() - t) / 1e6)
"""


def shell(http: httpx.Client, name: str) -> dict[str, str]:
    body = {"language": "bash", "name": name, "network": "localhost", "networks": ["bench"]}
    r = http.post("/v1/shells", json=body)
    r.raise_for_status()
    made = dict(r.json())
    for path, text in (("/workspace/srv.py", SERVER), ("/workspace/cli.py", CLIENT)):
        put = http.put(f"/v1/shells/{made['id']}/files", params={"path": path}, content=text.encode())
        put.raise_for_status()
    return made


def run(http: httpx.Client, rounds: int, trips: int, a: NodeMachine, b: NodeMachine) -> None:
    http.post("/v1/networks", json={"name": "bench"}).raise_for_status()
    x, y, w = shell(http, "x"), shell(http, "y"), shell(http, "w")
    assert x["node"] == w["node"] != y["node"], (x["node"], y["node"], w["node"])
    for s in (y, w):
        command = "nohup python3 /workspace/srv.py >/dev/null 2>&1 &"
        http.post(f"/v1/shells/{s['id']}/exec", params={"wait": "true"}, json={"command": command})
    members = {m["id"]: m["address"] for m in http.get("/v1/networks/bench").json()["shells"]}
    figures: dict[str, tuple[list[float], list[float]]] = {
        "one node": ([], []),
        "overlay": ([], []),
        "underlay": ([], []),
    }
    targets = {"one node": members[w["id"]], "overlay": members[y["id"]]}
    near, far = (a, b) if x["node"] == "node-a" else (b, a)
    # the nodes' own link, for what the overlay adds to it: node to node, no shell, no VXLAN
    server = SERVER.replace('"0.0.0.0"', f'"{far.address}"')
    listener = subprocess.Popen([*far.inside, sys.executable, "-c", server])
    time.sleep(1.0)  # until it listens
    try:
        for _ in range(rounds + 1):  # the first round warms up (the overlay's plan, caches), dropped
            order = [*targets, "underlay"]
            random.shuffle(order)
            for kind in order:
                if kind == "underlay":
                    done = near.run(sys.executable, "-c", CLIENT, far.address, str(trips))
                    assert done.returncode == 0, done.stderr.decode()
                    out = done.stdout.decode()
                else:
                    command = f"python3 /workspace/cli.py {targets[kind]} {trips}"
                    r = http.post(
                        f"/v1/shells/{x['id']}/exec", params={"wait": "true"}, json={"command": command}
                    )
                    r.raise_for_status()
                    out = r.json()["stdout"]
                rtt, mbps = (float(v) for v in out.split())
                figures[kind][0].append(rtt)
                figures[kind][1].append(mbps)
    finally:
        listener.terminate()
        listener.wait()
    base_rtt = statistics.median(figures["one node"][0][1:])
    base_mbps = statistics.median(figures["one node"][1][1:])
    print(f"{'path':<10} {'TCP round trip (median, µs)':>28} {'20 MB transfer (median, MB/s)':>31}")
    for kind, (rtts, mbps) in figures.items():
        rtt, rate = statistics.median(rtts[1:]), statistics.median(mbps[1:])
        print(f"{kind:<10} {rtt:>18.0f} ({rtt / base_rtt:4.2f}x) {rate:>21.0f} ({rate / base_mbps:4.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--trips", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-overlay-"))
    try:
        secret = cluster_secret(root)
        env = {"SHELLS_NETWORK_CIDR": "10.98.0.0/16"}
        with node_machine(root / "a", secret) as a, node_machine(root / "b", secret) as b:
            a.start("node-a", env)
            b.start("node-b", env)
            server_env = {"SHELLS_NODES": f"{a.url},{b.url}", "SHELLS_CLUSTER_SECRET_FILE": str(secret)}
            control = ServerProcess(root / "control", warm_pool=0, env=server_env)
            with serving(control, "bench-overlay") as running:
                headers = {"Authorization": f"Bearer {running.token}"}
                with httpx.Client(base_url=running.url, headers=headers, timeout=300) as http:
                    try:
                        run(http, args.rounds, args.trips, a, b)
                    finally:
                        for s in http.get("/v1/shells").json()["shells"]:
                            http.delete(f"/v1/shells/{s['id']}")
                        http.delete("/v1/networks/bench")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
