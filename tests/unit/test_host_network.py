"""The host-side dataplane with real packets: namespaces, veths, nftables and a fake internet.

Shells here are bare network namespaces attached by :class:`HostNetwork`, exactly as the container
backend attaches them (a container only joins the netns); ``test_host_network_container.py`` drives
real containers. Every destination lives in :class:`FakeInternet`'s namespace on this machine.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import InvalidRequest
from shells.domain.network import NetworkAccess, NetworkMode, PrivateNetwork, parse_allow_rule
from shells.runtime.host import netns
from shells.runtime.network import conntrack
from shells.runtime.network.dataplane import HostNetwork, ShellAddresses
from shells.runtime.network.rtnl import Netlink
from shells.settings import Settings
from tests.support.fake_internet import FakeInternet
from tests.support.netprobe import Listener, answered, inside, ping, tcp, udp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (netns, nftables)")

SEALED = NetworkAccess(NetworkMode.SEALED)
LOCALHOST = NetworkAccess(NetworkMode.LOCALHOST)
INTERNET = NetworkAccess(NetworkMode.INTERNET)
REFUSED = errno.ECONNREFUSED  # a refused TCP connect(): the host answers with a reset
FAST_S = 1.5  # well under the probes' 2 s timeout: an answer, not a silent drop


def allow(*entries: str) -> NetworkAccess:
    return NetworkAccess(NetworkMode.INTERNET, entries)


def objects_of(instance: str) -> list[str]:
    """Every link, nft table and route on the host that carries this instance's name or range."""
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    with Netlink() as nl:
        links = [f"link {link.name}" for link in nl.links() if instance in link.name]
    return (
        links
        + [t for t in tables.splitlines() if instance in t]
        + [r for r in routes.splitlines() if ("proto 83" in r and instance in r) or f"sg{instance}" in r]
    )


@dataclass
class Shell:
    host_id: str
    netns: str
    addresses: ShellAddresses

    @property
    def ip(self) -> str:
        assert self.addresses.ipv4 is not None
        return str(self.addresses.ipv4)


@pytest.fixture(scope="module")
def internet() -> Iterator[FakeInternet]:
    with FakeInternet() as net:
        yield net


@pytest.fixture(scope="module")
def net_workdir() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="shells-test-net-", dir="/var/tmp"))
    (top / "ns").mkdir()
    netns.ensure_private_mount(str(top / "ns"))
    old = os.environ.get("SHELLS_RUN_DIR")
    os.environ["SHELLS_RUN_DIR"] = str(top / "run")
    try:
        yield top
    finally:
        if old is None:
            os.environ.pop("SHELLS_RUN_DIR", None)
        else:
            os.environ["SHELLS_RUN_DIR"] = old
        netns.release_private_mount(str(top / "ns"))
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def network(net_workdir: Path, internet: FakeInternet) -> Iterator[HostNetwork]:
    hn = HostNetwork(Settings(data_dir=net_workdir / "data"))
    assert objects_of(hn.instance) == []
    hn.prepare()
    cidr = hn.range.cidr
    try:
        yield hn
    finally:
        hn.purge()
        assert objects_of(hn.instance) == []
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
        assert str(cidr) not in routes
        assert conntrack.count(set(cidr)) == 0


@pytest.fixture
def shells(network: HostNetwork, net_workdir: Path) -> Iterator[Callable[..., Shell]]:
    made: list[Shell] = []

    def make(policy: NetworkAccess, networks: tuple[PrivateNetwork, ...] = (), name: str = "") -> Shell:
        host_id = f"t{len(made)}{os.urandom(3).hex()}"
        path = str(net_workdir / "ns" / host_id)
        netns.create_sealed_netns(path)
        shell = Shell(host_id, path, network.attach(host_id, path, policy, networks, name or host_id))
        made.append(shell)
        return shell

    yield make
    for shell in made:
        addresses = {a for a in [shell.addresses.ipv4, *shell.addresses.networks.values()] if a}
        network.detach(shell.host_id)
        netns.remove_netns(shell.netns)
        network.settle()
        with Netlink() as nl:
            assert not [link.alias for link in nl.links() if link.alias == shell.host_id]
        assert conntrack.count(addresses) == 0


def quick(probe: Callable[[], object]) -> tuple[object, float]:
    start = time.monotonic()
    result = probe()
    return result, time.monotonic() - start


# sealed and localhost ---------------------------------------------------------------------------------
def test_sealed_refuses_tcp_udp_and_icmp_at_once_even_to_loopback(
    internet: FakeInternet, shells: Callable[..., Shell]
) -> None:
    s = shells(SEALED)
    for probe in (
        lambda: tcp(s.netns, internet.a, 80),
        lambda: tcp(s.netns, "127.0.0.1", 80),
        lambda: udp(s.netns, internet.a, 53),
        lambda: ping(s.netns, internet.a),
    ):
        outcome, took = quick(probe)
        assert (outcome, took < FAST_S) == (errno.ENETUNREACH, True)
    outcome, took = quick(lambda: tcp(s.netns, "2001:db8::10", 80))
    assert (outcome, took < FAST_S) == (errno.EADDRNOTAVAIL, True)  # not even ::1 exists
    assert inside(s.netns, lambda: [name for _, name in socket.if_nameindex()]) == ["lo"]


def test_localhost_serves_loopback_and_reaches_nothing_else(
    internet: FakeInternet, shells: Callable[..., Shell]
) -> None:
    s = shells(LOCALHOST)
    server = Listener(s.netns, "127.0.0.1", 7000, "local")
    try:
        assert tcp(s.netns, "127.0.0.1", 7000) == b"local from 127.0.0.1\n"
    finally:
        server.close()
    assert tcp(s.netns, internet.a, 80) == errno.ENETUNREACH
    assert tcp(s.netns, str(s.addresses.gateway), 53) == errno.ENETUNREACH
    assert inside(s.netns, lambda: [name for _, name in socket.if_nameindex()]) == ["lo"]


# internet ---------------------------------------------------------------------------------------------
def test_internet_without_a_list_reaches_public_addresses_through_nat(
    shells: Callable[..., Shell], internet: FakeInternet
) -> None:
    s = shells(INTERNET)
    nat = str(internet.host_address)
    assert tcp(s.netns, internet.a, 80) == f"{internet.a}:80 from {nat}\n".encode()
    assert tcp(s.netns, internet.d, 8080) == f"{internet.d}:8080 from {nat}\n".encode()
    assert udp(s.netns, internet.c, 53) == f"{internet.c}:53 from {nat}\n".encode()
    assert ping(s.netns, internet.b) == b"pong"
    assert s.ip not in {c for _, _, c in internet.seen}


@pytest.mark.parametrize("private", ["10.1.2.3", "192.168.1.1", "172.16.0.9", "100.64.0.1"])
def test_internet_without_a_list_refuses_private_ranges_at_once(
    shells: Callable[..., Shell], private: str
) -> None:
    s = shells(INTERNET)
    outcome, took = quick(lambda: tcp(s.netns, private, 80))
    assert (outcome, took < FAST_S) == (REFUSED, True)


def test_an_ip_rule_admits_that_address_only(shells: Callable[..., Shell], internet: FakeInternet) -> None:
    s = shells(allow(internet.a))
    assert answered(tcp(s.netns, internet.a, 8080), f"{internet.a}:8080".encode())
    assert answered(udp(s.netns, internet.a, 5353), f"{internet.a}:5353".encode())
    assert ping(s.netns, internet.a) == b"pong"
    before = len(internet.arrivals(internet.b, 80))
    assert tcp(s.netns, internet.b, 80) == REFUSED
    assert tcp(s.netns, internet.c, 80) == REFUSED
    assert ping(s.netns, internet.b) == "unreachable/13"
    assert len(internet.arrivals(internet.b, 80)) == before


def test_cidr_rules_with_port_and_protocol(internet: FakeInternet, shells: Callable[..., Shell]) -> None:
    s = shells(allow("203.0.113.0/24:443/tcp", "198.51.100.0/24:53/udp", f"{internet.b}/tcp"))
    assert answered(tcp(s.netns, internet.c, 443), f"{internet.c}:443".encode())
    assert answered(tcp(s.netns, internet.d, 443), f"{internet.d}:443".encode())
    assert tcp(s.netns, internet.c, 80) == REFUSED
    assert answered(udp(s.netns, internet.a, 53), f"{internet.a}:53".encode())
    assert udp(s.netns, internet.a, 5353) == errno.EHOSTUNREACH
    assert tcp(s.netns, internet.a, 53) == REFUSED  # UDP only
    assert answered(tcp(s.netns, internet.b, 80), f"{internet.b}:80".encode())
    assert answered(tcp(s.netns, internet.b, 8080), f"{internet.b}:8080".encode())
    assert ping(s.netns, internet.b) == "unreachable/13"  # TCP only


def test_a_port_without_protocol_admits_tcp_and_udp(
    internet: FakeInternet, shells: Callable[..., Shell]
) -> None:
    s = shells(allow(f"{internet.c}:53"))
    assert answered(udp(s.netns, internet.c, 53), f"{internet.c}:53".encode())
    assert answered(tcp(s.netns, internet.c, 53), f"{internet.c}:53".encode())
    assert tcp(s.netns, internet.c, 80) == REFUSED


def test_a_direct_connection_to_an_address_no_allowed_name_resolved_to_is_refused(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    s = shells(allow("pypi.example.org:80", "*.cdn.example.org"))
    assert tcp(s.netns, internet.a, 80) == REFUSED
    network.allow_resolved(
        s.host_id, parse_allow_rule("pypi.example.org:80"), [ipaddress.ip_address(internet.a)], 60
    )
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    assert tcp(s.netns, internet.a, 8080) == REFUSED  # the rule's port only
    assert tcp(s.netns, internet.b, 80) == REFUSED  # not resolved through an allowed name
    wildcard = parse_allow_rule("*.cdn.example.org")
    network.allow_resolved(s.host_id, wildcard, [ipaddress.ip_address(internet.d)], 60)
    assert ping(s.netns, internet.d) == b"pong"
    elements = subprocess.run(
        ["nft", "list", "set", "inet", f"shells_{network.instance}", f"p{network._shell(s.host_id).slot}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{internet.a} . tcp . 80 timeout 1m" in elements  # resolved addresses expire


def test_resolved_addresses_for_a_rule_the_shell_lacks_are_ignored(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    s = shells(allow("pypi.example.org"))
    other = parse_allow_rule("evil.example.org")
    network.allow_resolved(s.host_id, other, [ipaddress.ip_address(internet.a)], 60)
    assert tcp(s.netns, internet.a, 80) == REFUSED


@pytest.mark.parametrize("listed", [False, True])
def test_the_metadata_address_is_refused_whatever_the_policy(
    shells: Callable[..., Shell], internet: FakeInternet, listed: bool
) -> None:
    s = shells(allow(internet.metadata, "169.254.0.0/16:80") if listed else INTERNET)
    assert tcp(s.netns, internet.metadata, 80) == REFUSED
    assert udp(s.netns, internet.metadata, 53) == errno.EHOSTUNREACH
    assert internet.arrivals(internet.metadata, 80) == []


def test_the_host_and_its_services_are_refused_except_dns_on_the_gateway(
    network: HostNetwork, shells: Callable[..., Shell], internet: FakeInternet
) -> None:
    s = shells(INTERNET)
    gateway = str(s.addresses.gateway)
    with socket.socket() as api, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns:
        api.bind(("0.0.0.0", 0))
        api.listen()
        port = api.getsockname()[1]
        dns.bind((gateway, 53))
        dns.settimeout(2)
        for target in (gateway, str(internet.host_address), _host_primary_address()):
            assert tcp(s.netns, target, port) == REFUSED, target
        assert udp(s.netns, gateway, 53, timeout=0.2) == "timeout"  # admitted: reaches the socket
        data, peer = dns.recvfrom(100)
        assert (data, peer[0]) == (b"hello", s.ip)
    assert tcp(s.netns, gateway, 22) == REFUSED
    blocked = {(a.destination, a.port) for h, a in network.drain_blocked() if h == s.host_id}
    assert {(gateway, port), (gateway, 22)} <= blocked


def _host_primary_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the source address
        return str(probe.getsockname()[0])


def test_a_shell_cannot_reach_another_shell(network: HostNetwork, shells: Callable[..., Shell]) -> None:
    a, b = shells(INTERNET), shells(allow("10.0.0.0/8"))
    server = Listener(b.netns, b.ip, 9000, "b")
    try:
        assert tcp(a.netns, b.ip, 9000) == REFUSED
        assert tcp(b.netns, a.ip, 9000) == REFUSED  # an allow list cannot open the instance's range
    finally:
        server.close()
    attempts = [x for h, x in network.drain_blocked() if h == a.host_id]
    assert [(x.destination, x.port, x.protocol) for x in attempts] == [(b.ip, 9000, "tcp")]


def test_ipv6_fails_at_once_and_what_a_guest_sends_anyway_is_counted_and_dropped(
    network: HostNetwork, shells: Callable[..., Shell], internet: FakeInternet
) -> None:
    s = shells(INTERNET)
    outcome, took = quick(lambda: tcp(s.netns, "2001:db8::10", 80))
    assert (outcome, took < FAST_S) == (errno.ENETUNREACH, True)
    # What a microVM's own kernel could do: give itself IPv6 and send. The host must drop it.
    for cmd in (
        "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0",
        "ip -6 addr add 2001:db8:5::5/64 dev eth0 nodad",
        "ip -6 route add 2001:db8::/32 dev eth0",
        "ip -6 neigh add 2001:db8::10 lladdr 02:73:68:00:00:01 dev eth0 nud permanent",
    ):
        subprocess.run(["nsenter", f"--net={s.netns}", *cmd.split()], check=True)
    assert tcp(s.netns, "2001:db8::10", 80, timeout=0.5) == "timeout"
    assert internet.arrivals("2001:db8::10", 80) == []
    blocked = [a for h, a in network.drain_blocked() if h == s.host_id]
    assert any((a.destination, a.port, a.protocol) == ("2001:db8::10", 80, "tcp") for a in blocked)


def test_a_spoofed_source_address_is_dropped_and_counted(
    network: HostNetwork, shells: Callable[..., Shell], internet: FakeInternet
) -> None:
    victim, attacker = shells(INTERNET), shells(INTERNET)
    subprocess.run(
        ["nsenter", f"--net={attacker.netns}", "ip", "addr", "add", f"{victim.ip}/32", "dev", "eth0"],
        check=True,
    )
    subprocess.run(
        ["nsenter", f"--net={attacker.netns}", "ip", "addr", "add", "198.51.100.77/32", "dev", "eth0"],
        check=True,
    )
    before = len(internet.seen)
    assert udp(attacker.netns, internet.a, 5353, timeout=0.5, source=victim.ip) == "timeout"
    assert udp(attacker.netns, internet.a, 5353, timeout=0.5, source="198.51.100.77") == "timeout"
    assert len(internet.seen) == before
    assert answered(udp(attacker.netns, internet.a, 5353, source=attacker.ip), internet.a.encode())
    counted = [a for h, a in network.drain_blocked() if h == attacker.host_id]
    assert [(a.destination, a.port, a.count) for a in counted] == [(internet.a, 5353, 2)]


# changes on a running shell -----------------------------------------------------------------------------
def test_policy_changes_apply_at_once_on_a_running_shell(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    s = shells(SEALED)
    assert tcp(s.netns, internet.a, 80) == errno.ENETUNREACH
    network.set_policy(s.host_id, INTERNET)
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    network.set_policy(s.host_id, allow(internet.b))
    assert tcp(s.netns, internet.a, 80) == REFUSED
    assert answered(tcp(s.netns, internet.b, 80), f"{internet.b}:80".encode())
    network.set_policy(s.host_id, LOCALHOST)
    assert tcp(s.netns, internet.b, 80) == errno.ENETUNREACH
    assert inside(s.netns, lambda: [name for _, name in socket.if_nameindex()]) == ["lo"]
    network.set_policy(s.host_id, SEALED)
    assert tcp(s.netns, "127.0.0.1", 80) == errno.ENETUNREACH
    network.set_policy(s.host_id, INTERNET)
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    assert network.addresses(s.host_id).ipv4 is not None


def test_a_policy_change_forgets_the_shells_tracked_connections(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    s = shells(INTERNET)
    assert answered(udp(s.netns, internet.c, 53), internet.c.encode())
    assert conntrack.count({ipaddress.IPv4Address(s.ip)}) >= 1
    network.set_policy(s.host_id, allow(internet.d))
    assert conntrack.count({ipaddress.IPv4Address(s.ip)}) == 0


# private networks ---------------------------------------------------------------------------------------
def test_private_network_members_reach_each_other_both_ways_and_nothing_else(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    red = PrivateNetwork("net-red", "red", network.free_network_cidr())
    network.create_network(red)
    blue = PrivateNetwork("net-blue", "blue", network.free_network_cidr())
    network.create_network(blue)
    try:
        a, b = shells(LOCALHOST, (red,), "alpha"), shells(INTERNET, (red,), "beta")
        c = shells(LOCALHOST, (blue,), "gamma")
        outsider = shells(INTERNET)
        ip_a, ip_b, ip_c = (str(x.addresses.networks[n.id]) for x, n in ((a, red), (b, red), (c, blue)))
        servers = [Listener(a.netns, ip_a, 7000, "alpha"), Listener(b.netns, ip_b, 7000, "beta")]
        servers.append(Listener(c.netns, ip_c, 7000, "gamma"))
        try:
            assert tcp(a.netns, ip_b, 7000) == f"beta from {ip_a}\n".encode()
            assert tcp(b.netns, ip_a, 7000) == f"alpha from {ip_b}\n".encode()
            assert tcp(c.netns, ip_a, 7000) == errno.ENETUNREACH  # no route to another network
            assert tcp(b.netns, ip_c, 7000) == REFUSED  # via its uplink: refused
            assert tcp(outsider.netns, ip_a, 7000) == REFUSED
            assert tcp(a.netns, internet.a, 80) == errno.ENETUNREACH  # localhost mode
        finally:
            for server in servers:
                server.close()
        assert network.peers(red.id) == {
            "alpha": ipaddress.IPv4Address(ip_a),
            "beta": ipaddress.IPv4Address(ip_b),
        }
        assert network.client_of(ipaddress.IPv4Address(ip_a)) == a.host_id
        assert network.client_of(ipaddress.IPv4Address(b.ip)) == b.host_id
    finally:
        network.delete_network(red.id)
        network.delete_network(blue.id)


def test_join_and_leave_on_a_running_shell(network: HostNetwork, shells: Callable[..., Shell]) -> None:
    green = PrivateNetwork("net-green", "green", network.free_network_cidr())
    try:
        a, b = shells(LOCALHOST), shells(LOCALHOST)
        ip_a = network.join(a.host_id, green, "a")
        ip_b = network.join(b.host_id, green, "b")
        server = Listener(b.netns, ip_b, 7000, "b")
        try:
            assert tcp(a.netns, ip_b, 7000) == f"b from {ip_a}\n".encode()
            network.leave(a.host_id, green.id)
            assert tcp(a.netns, ip_b, 7000) == errno.ENETUNREACH
        finally:
            server.close()
        assert network.peers(green.id) == {"b": ipaddress.IPv4Address(ip_b)}
    finally:
        network.delete_network(green.id)


def test_a_network_cidr_outside_the_instance_range_is_refused(network: HostNetwork) -> None:
    with pytest.raises(InvalidRequest, match="network range"):
        network.create_network(PrivateNetwork("net-x", "x", ipaddress.IPv4Network("192.168.77.0/24")))


# audit --------------------------------------------------------------------------------------------------
def test_blocked_attempts_aggregate_per_destination_and_stay_bounded(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell]
) -> None:
    s = shells(allow(internet.c))

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(300):
                sock.sendto(b"x", (internet.a, 9999))
            for port in range(20000, 21500):
                sock.sendto(b"x", (internet.b, port))

    started = time.time()
    inside(s.netns, flood)
    attempts = [a for h, a in network.drain_blocked() if h == s.host_id]
    same = [a for a in attempts if a.destination == internet.a]
    assert [(a.port, a.protocol, a.count) for a in same] == [(9999, "udp", 300)]
    assert started - 2 <= same[0].first_seen.timestamp() <= same[0].last_seen.timestamp() <= time.time() + 1
    assert len(attempts) <= 1024  # one record per destination, capped per shell
    inside(
        s.netns,
        lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", (internet.a, 9999)),
    )
    again = [a for h, a in network.drain_blocked() if h == s.host_id]
    assert [(a.destination, a.port, a.count) for a in again] == [(internet.a, 9999, 1)]
    assert network.drain_blocked() == []


def test_the_drain_reads_only_the_shells_that_refused_something(
    network: HostNetwork, shells: Callable[..., Shell], monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet, noisy = shells(allow("203.0.113.10")), shells(allow("203.0.113.10"))
    network.drain_blocked()  # whatever earlier tests left
    asked: list[str] = []
    query = network.nft.query

    def counted(command: str) -> Any:
        asked.append(command)
        return query(command)

    monkeypatch.setattr(network.nft, "query", counted)
    inside(
        noisy.netns,
        lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("198.51.100.12", 7)),
    )
    assert [(a.destination, a.count) for h, a in network.drain_blocked() if h == noisy.host_id] == [
        ("198.51.100.12", 1)
    ]
    listed = " ".join(asked)
    slot_of = {h: network._shells[h].slot for h in (quiet.host_id, noisy.host_id)}
    assert "list sets" not in listed and f" b{slot_of[noisy.host_id]} " in f"{listed} "
    assert f" b{slot_of[quiet.host_id]} " not in f"{listed} "


def test_attempts_not_yet_drained_survive_the_detach(
    internet: FakeInternet, network: HostNetwork, net_workdir: Path
) -> None:
    path = str(net_workdir / "ns" / "late")
    netns.create_sealed_netns(path)
    try:
        network.attach("late", path, allow(internet.c))
        assert tcp(path, internet.a, 80) == REFUSED
        network.detach("late")
        assert [a.destination for h, a in network.drain_blocked() if h == "late"] == [internet.a]
    finally:
        network.detach("late")
        netns.remove_netns(path)


# restart and instances ----------------------------------------------------------------------------------
def test_a_restarted_server_adopts_running_shells_repairs_ports_and_removes_orphans(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell], net_workdir: Path
) -> None:
    s = shells(allow(internet.a))
    assert tcp(s.netns, internet.b, 80) == REFUSED
    orphan = f"sh{network.instance}fffff"
    subprocess.run(
        ["ip", "link", "add", orphan, "type", "veth", "peer", "name", f"{orphan[:-1]}x"], check=True
    )
    port = f"sh{network.instance}{network._shell(s.host_id).slot * 16:05x}"
    subprocess.run(["ip", "link", "del", port], check=True)  # lost while the server was away
    successor = HostNetwork(Settings(data_dir=net_workdir / "data"))
    successor.prepare()
    with Netlink() as nl:
        assert nl.index(orphan) is None
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    assert [(a.destination, a.count) for h, a in successor.drain_blocked() if h == s.host_id] == [
        (internet.b, 1)
    ]
    successor.set_policy(s.host_id, allow(internet.b))
    assert answered(tcp(s.netns, internet.b, 80), f"{internet.b}:80".encode())
    network.prepare()  # the fixture's object takes over again, with the successor's records


def test_a_restarted_server_remakes_an_older_servers_allow_set_and_keeps_its_policy(
    internet: FakeInternet, network: HostNetwork, shells: Callable[..., Shell], net_workdir: Path
) -> None:
    """Servers before the allow set ``a<slot>`` was keyed by address and protocol made it keyed by
    address only; a server adopting such a shell makes the set again with its rules."""
    s = shells(allow(internet.a))
    slot, t = network._shell(s.host_id).slot, network.rules.table
    network.nft.run(
        f"flush chain {t} s{slot}\ndelete set {t} a{slot}\n"
        f"add set {t} a{slot} {{ type ipv4_addr; flags interval, timeout; }}\n"
        f"add element {t} a{slot} {{ {internet.a}/32 }}\n"
        f"add rule {t} s{slot} ip daddr @forbidden4 return\n"
        f"add rule {t} s{slot} ip daddr @a{slot} accept\n"
    )  # what such a server left
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    successor = HostNetwork(Settings(data_dir=net_workdir / "data"))
    successor.prepare()
    (found,) = [i["set"] for i in successor.nft.query(f"list set {t} a{slot}") if "set" in i]
    assert found["type"] == ["ipv4_addr", "inet_proto"]
    assert answered(tcp(s.netns, internet.a, 80), f"{internet.a}:80".encode())
    assert tcp(s.netns, internet.b, 80) == REFUSED
    network.prepare()


def test_two_instances_get_separate_ranges_and_objects(net_workdir: Path, network: HostNetwork) -> None:
    other = HostNetwork(Settings(data_dir=net_workdir / "other-data"))
    other.prepare()
    try:
        assert not other.range.cidr.overlaps(network.range.cidr)
        assert other.rules.table != network.rules.table
    finally:
        other.purge()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert f"shells_{network.instance}" in tables and f"shells_{other.instance}" not in tables


def test_a_configured_range_that_the_host_already_routes_is_refused(
    net_workdir: Path, network: HostNetwork
) -> None:
    clash = Settings(data_dir=net_workdir / "clash-data", network_cidr=network.range.cidr)
    with pytest.raises(InvalidRequest, match="SHELLS_NETWORK_CIDR"):
        HostNetwork(clash).prepare()
    shutil.rmtree(clash.run_dir, ignore_errors=True)


def test_a_restarted_server_releases_shells_whose_netns_vanished(
    internet: FakeInternet, network: HostNetwork, net_workdir: Path
) -> None:
    path = str(net_workdir / "ns" / "vanished")
    netns.create_sealed_netns(path)
    network.attach("vanished", path, allow(internet.c))
    assert tcp(path, internet.a, 80) == REFUSED
    slot = network._shell("vanished").slot
    netns.remove_netns(path)  # the shell died with the server away
    successor = HostNetwork(Settings(data_dir=net_workdir / "data"))
    successor.prepare()
    successor.settle()
    assert successor.policy_of("vanished") is None
    assert [a.destination for h, a in successor.drain_blocked() if h == "vanished"] == [internet.a]
    tables = subprocess.run(
        ["nft", "list", "table", *successor.rules.table.split()], capture_output=True, text=True, check=True
    )
    assert f"chain s{slot} " not in tables.stdout and f"set b{slot} " not in tables.stdout
    network.prepare()


def test_attaching_a_netns_again_right_after_a_detach_replaces_its_stale_port(
    internet: FakeInternet, network: HostNetwork, net_workdir: Path
) -> None:
    path = str(net_workdir / "ns" / "again")
    netns.create_sealed_netns(path)
    try:
        network.attach("again", path, INTERNET)
        network.detach("again")  # its port is still queued for deletion
        network.attach("again", path, INTERNET)
        assert answered(tcp(path, internet.a, 80), f"{internet.a}:80".encode())
        network.attach("again", path, INTERNET)  # attaching an attached shell starts it afresh
        assert answered(tcp(path, internet.a, 80), f"{internet.a}:80".encode())
    finally:
        network.detach("again")
        netns.remove_netns(path)
        network.settle()


def test_purge_finds_the_range_in_the_table_when_the_run_dir_is_gone(net_workdir: Path) -> None:
    settings = Settings(data_dir=net_workdir / "forgetful-data")
    first = HostNetwork(settings)
    first.prepare()
    cidr = first.range.cidr
    shutil.rmtree(settings.run_dir)  # e.g. someone cleaned /run by hand
    HostNetwork(settings).purge()
    assert objects_of(settings.instance_id) == []
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert str(cidr) not in routes


def shown(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def link_names() -> set[str]:
    with Netlink() as nl:
        return {link.name for link in nl.links()}


def test_overlay_links_follow_the_plan_and_go_with_a_restart_and_the_purge(net_workdir: Path) -> None:
    settings = Settings(data_dir=net_workdir / "overlay-data")
    hn = HostNetwork(settings)
    hn.prepare()
    path = str(net_workdir / "ns" / "overlaid")
    netns.create_sealed_netns(path)
    try:
        blue = PrivateNetwork("net-ov", "ov", hn.free_network_cidr())
        hn.attach("overlaid", path, LOCALHOST, (blue,), "x")
        local, peer = ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")
        remote = blue.cidr[3]
        hn.set_overlay(local, {blue.id: {peer: {"r": remote}}})
        link = f"v{hn.instance}{int(blue.cidr.network_address) & 0xFFFFFF:06x}"
        assert f"{remote} proto 83 scope link metric 100" in shown("ip", "route", "show", "dev", link)
        assert "02:76:c0:00:02:02 dst 192.0.2.2 self permanent" in shown("bridge", "fdb", "show", "dev", link)
        assert hn.peers(blue.id) == {"x": blue.cidr[2], "r": remote}
        # a member that joins here gets neither a local member's address nor the remote one
        second = str(net_workdir / "ns" / "overlaid2")
        netns.create_sealed_netns(second)
        try:
            got = hn.attach("overlaid2", second, LOCALHOST, (blue,), "y").networks[blue.id]
            assert got == blue.cidr[4]
        finally:
            hn.detach("overlaid2")
            netns.remove_netns(second)
        hn.set_overlay(local, {})  # the last peer left: the link goes
        assert link not in link_names()
        hn.set_overlay(local, {blue.id: {peer: {"r": remote}}})
        HostNetwork(settings).prepare()  # a restarted node starts from no link; the plan comes again
        assert link not in link_names()
        hn = HostNetwork(settings)
        hn.prepare()
        hn.set_overlay(local, {blue.id: {peer: {"r": remote}}})
        assert link in link_names()
    finally:
        hn.purge()
        netns.remove_netns(path)
    assert objects_of(settings.instance_id) == []
