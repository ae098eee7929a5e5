"""A private network across nodes: two node agents, each in its own network namespace ("machine")
on its own test bridge, so the overlay's packets cross real links; a control plane drives both.

Members of one network on different nodes reach each other by address and by name; a shell on
another network, a shell on no network and a shell whose allow list names the other node reach
neither the members nor the other node; the overlay link goes when its network's last member on a
node leaves; and no link is left behind."""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine
from .rest import ShellMaker, exec_wait, rest_client, shell_maker
from .test_network import blocked_log, probe, shell_with_probe

NETWORK_CIDR = "10.99.0.0/16"
"""Every node of a cluster has the same range (its private networks are the instance's)."""
LINKED_S = 15.0
BULK_SERVER = (
    "import socket; s = socket.create_server(('0.0.0.0', 7001)); c, _ = s.accept(); "
    "c.sendall(b'x' * 1000000); c.close()"
)
BULK_CLIENT = (
    "import socket; s = socket.create_connection(('{}', 7001), timeout=20); "
    "print(sum(len(b) for b in iter(lambda: s.recv(65536), b'')))"
)


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NodeMachine]]:
    root = Path(tmp_path_factory.mktemp("overlay"))
    secret = cluster_secret(root)
    with node_machine(root / "a", secret) as a, node_machine(root / "b", secret) as b:
        a.start("node-a", {"SHELLS_NETWORK_CIDR": NETWORK_CIDR})
        b.start("node-b", {"SHELLS_NETWORK_CIDR": NETWORK_CIDR})
        yield {"node-a": a, "node-b": b}


@pytest.fixture(scope="module")
def control(
    machines: dict[str, NodeMachine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "SHELLS_NODES": ",".join(m.url for m in machines.values()),
        "SHELLS_CLUSTER_SECRET_FILE": str(machines["node-a"].secret_file),
    }
    server = ServerProcess(Path(tmp_path_factory.mktemp("overlay-control")), warm_pool=0, env=env)
    with serving(server, "overlay-control") as running:
        yield running


@pytest.fixture
def api(control: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(control) as c:
        yield c


@pytest.fixture
def make(api: httpx.Client) -> Iterator[ShellMaker]:
    with shell_maker(api) as m:
        yield m


def overlay_links(machine: NodeMachine) -> list[dict[str, object]]:
    """The VXLAN links in the node's netns (``ip -d -j link``)."""
    out = machine.run("ip", "-d", "-j", "link", "show", "type", "vxlan")
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout or b"[]"))


def link_count(machine: NodeMachine) -> str:
    return str(len(overlay_links(machine)))


def eventually(check: str, attempt: Callable[[], object], want: str, timeout_s: float = LINKED_S) -> str:
    """Call ``attempt()`` until its answer starts with ``want`` (the overlay's plan is sent every
    second); the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = str(attempt())
        if got.startswith(want) or time.monotonic() > deadline:
            assert got.startswith(want), f"{check}: {got}"
            return got
        time.sleep(0.5)


def test_members_on_two_nodes_reach_each_other_and_only_each_other(
    api: httpx.Client, make: ShellMaker, machines: dict[str, NodeMachine]
) -> None:
    for name in ("blue", "red"):
        assert api.post("/v1/networks", json={"name": name}).status_code == 201
    try:
        x = shell_with_probe(make, api, name="x", network="localhost", networks=["blue"])
        y = shell_with_probe(make, api, name="y", network="localhost", networks=["blue"])
        assert x["node"] != y["node"], "placement put both members on one node"
        z = shell_with_probe(make, api, name="z", network="localhost", networks=["red"])
        other = machines[x["node"]]
        allow = [f"{other.address}/32"]  # names x's node: the overlay's peers stay out of reach
        d = shell_with_probe(make, api, name="d", network={"mode": "internet", "allow": allow})
        assert z["node"] == x["node"] and d["node"] == y["node"]
        for s in (x, y):
            exec_wait(api, s["id"], "nohup python3 /workspace/probe.py serve 0.0.0.0 7000 >/dev/null 2>&1 &")
        exec_wait(api, y["id"], f"nohup python3 -c {BULK_SERVER!r} >/dev/null 2>&1 &")
        ips = {m["id"]: m["address"] for m in api.get("/v1/networks/blue").json()["shells"]}
        assert ips[x["id"]] != ips[y["id"]], "both nodes gave out one address"

        # across the link, both ways, by address and by name
        eventually("x to y", lambda: probe(api, x["id"], "tcp", ips[y["id"]], 7000), "ok")
        assert probe(api, y["id"], "tcp", ips[x["id"]], 7000).startswith("ok")
        assert probe(api, x["id"], "dns", "y.blue") == f"ok {ips[y['id']]}"
        # a megabyte in full-sized segments: the link's smaller MTU is learnt (path MTU discovery)
        got = exec_wait(api, x["id"], f"python3 -c {BULK_CLIENT.format(ips[y['id']])!r}", timeout_s=30)
        assert got["stdout"].strip() == "1000000", got
        # the link is VXLAN with the network's VNI, static peers only (no learning, no group)
        (link,) = overlay_links(other)
        cidr = ipaddress.IPv4Network(api.get("/v1/networks/blue").json()["cidr"])
        vni = int(cidr.network_address) & 0xFFFFFF
        vxlan = link["linkinfo"]["info_data"]  # type: ignore[index]
        assert (vxlan["id"], vxlan["port"], vxlan["learning"]) == (vni, 4789, False)
        assert "group" not in vxlan and vxlan["local"] == other.address
        # not a member: on another network (z, on x's node), or on none (d, on y's node)
        assert probe(api, z["id"], "tcp", ips[y["id"]], 7000).startswith("blocked")
        assert probe(api, d["id"], "tcp", ips[x["id"]], 7000).startswith("blocked")
        # a shell whose allow list names a peer node reaches neither its VXLAN port nor anything else
        assert probe(api, d["id"], "tcp", other.address, other.port).startswith("blocked")
        assert probe(api, d["id"], "udp", other.address, 4789).startswith("blocked")
        blocked = {
            (b["destination"], b["protocol"], b["port"]) for b in blocked_log(api, d["id"], other.address)
        }
        assert {(other.address, "tcp", other.port), (other.address, "udp", 4789)} <= blocked
        # a VXLAN packet of the right VNI from an address that is no peer node (here: the host, on
        # the bridges' side) is dropped before the link sees it
        before = received(other, str(link["ifname"]))
        forge(other.address, vni)
        time.sleep(0.5)
        assert received(other, str(link["ifname"])) == before

        # the last member leaving a node takes the link away on both nodes; joining brings it back
        assert api.delete(f"/v1/networks/blue/shells/{y['id']}").status_code == 204
        eventually("y detached", lambda: probe(api, x["id"], "tcp", ips[y["id"]], 7000), "blocked")
        eventually("x's link gone", functools.partial(link_count, other), "0")
        r = api.post("/v1/networks/blue/shells", json={"shell_id": y["id"]})
        assert r.status_code == 200, r.text
        back = next(m["address"] for m in r.json()["shells"] if m["id"] == y["id"])
        eventually("y joined again", lambda: probe(api, x["id"], "tcp", back, 7000), "ok")
    finally:
        for s in api.get("/v1/shells").json()["shells"]:
            api.delete(f"/v1/shells/{s['id']}")
        for name in ("blue", "red"):
            api.delete(f"/v1/networks/{name}")
    for machine in machines.values():
        eventually("no link left", functools.partial(link_count, machine), "0")


def received(machine: NodeMachine, link: str) -> int:
    """Packets the overlay link ``link`` of the node has taken in."""
    out = machine.run("ip", "-s", "-j", "link", "show", "dev", link)
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)[0]["stats64"]["rx"]["packets"])


def forge(address: str, vni: int) -> None:
    """Three VXLAN packets with ``vni`` to ``address`` from this host: an IPv4 frame to the node's
    link (its MAC holds its address), as a peer would send."""
    mac = bytes([2, 0x76, *ipaddress.IPv4Address(address).packed])
    frame = mac + bytes([2, 0x76, 10, 10, 10, 10]) + b"\x08\x00" + b"\x45" + b"\0" * 40
    header = b"\x08\0\0\0" + vni.to_bytes(3, "big") + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(3):
            s.sendto(header + frame, (address, 4789))
