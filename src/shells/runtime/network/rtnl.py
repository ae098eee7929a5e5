"""A small rtnetlink client: links, addresses, routes and neighbours, in the host's or a shell's netns.

Only the messages the dataplane sends are here. Each request asks for an acknowledgement, so a
failure raises ``OSError`` with the kernel's errno at the step that caused it. A socket belongs to
the network namespace it was created in (:func:`open_in_netns` makes one inside a shell's), so one
process configures both ends of a veth pair without ``ip netns exec``: ~10 messages cost well under
a millisecond, where the same steps as ``ip`` commands cost a process each.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from shells.runtime.host.netns import run_in_netns

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 0x300, 0x200, 0x400, 0x100

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29

IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 1, 3, 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 1, 4, 7, 15
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
NDA_DST, NDA_LLADDR = 1, 2

IFF_UP, IFF_NOARP = 0x1, 0x80
NTF_SELF = 0x2
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST, RTN_UNREACHABLE = 1, 7
RTNH_F_ONLINK = 0x4
NUD_PERMANENT = 0x80
RTPROT_SHELLS = 0x53
"""Route protocol number (``proto 83`` in ``ip route``) marking the routes Shells installs."""

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTATTR = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, value: bytes | str | int) -> bytes:
    """One rtattr; strings are NUL-terminated, ints are native u32."""
    data = (
        value.encode() + b"\0"
        if isinstance(value, str)
        else struct.pack("=I", value)
        if isinstance(value, int)
        else value
    )
    raw = _RTATTR.pack(_RTATTR.size + len(data), kind) + data
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + _RTATTR.size : offset + length]
        offset += _align(length)
    return out


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    alias: str


class Netlink:
    """One netlink socket (NETLINK_ROUTE unless told), bound to the netns it was created in."""

    def __init__(self, protocol: int = NETLINK_ROUTE) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # transport ------------------------------------------------------------------------------------
    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self._sock.send(
            _HDR.pack(_HDR.size + len(payload), kind, flags | NLM_F_REQUEST, self._seq, 0) + payload
        )
        return self._seq

    def request(self, kind: int, payload: bytes, flags: int = 0) -> None:
        """Send one request and wait for its acknowledgement; raise ``OSError`` on a kernel error."""
        seq = self._send(kind, flags | NLM_F_ACK, payload)
        while True:
            for msg_type, msg_seq, body in self._messages():
                if msg_type == NLMSG_ERROR and msg_seq == seq:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return

    def dump(self, kind: int, payload: bytes) -> list[bytes]:
        """The bodies of every message a dump request answers with."""
        seq = self._send(kind, NLM_F_DUMP, payload)
        bodies: list[bytes] = []
        while True:
            for msg_type, msg_seq, body in self._messages():
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return bodies
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    raise OSError(code, os.strerror(code))
                bodies.append(body)

    def _messages(self) -> list[tuple[int, int, bytes]]:
        data = self._sock.recv(1 << 16)
        out: list[tuple[int, int, bytes]] = []
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind, _flags, seq, _pid = _HDR.unpack_from(data, offset)
            out.append((kind, seq, data[offset + _HDR.size : offset + length]))
            offset += _align(length)
        return out

    # links ----------------------------------------------------------------------------------------
    def create_veth(
        self, name: str, mac: str, alias: str, peer: str, peer_mac: str, peer_netns_fd: int
    ) -> None:
        """A veth pair: ``name`` here, ``peer`` created directly inside the netns of ``peer_netns_fd``."""
        peer_info = (
            _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, peer) + attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        )
        peer_info += attr(IFLA_NET_NS_FD, peer_netns_fd)
        info = attr(IFLA_INFO_KIND, b"veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info))
        payload = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name) + attr(IFLA_ADDRESS, mac_bytes(mac))
        payload += attr(IFLA_IFALIAS, alias) + attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL)

    def create_link(self, name: str, kind: str) -> None:
        """A link of a kind that needs no parameters (``bridge``, ``dummy``)."""
        payload = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name)
        payload += attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, kind.encode()))
        self.request(RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL)

    def create_vxlan(self, name: str, vni: int, local: ipaddress.IPv4Address, port: int, mac: str) -> None:
        """A VXLAN link that learns nothing (every remote MAC is a static FDB entry) and answers no
        ARP, sending from ``local`` to UDP ``port`` of its peers."""
        data = attr(IFLA_VXLAN_ID, vni) + attr(IFLA_VXLAN_LOCAL, local.packed)
        data += attr(IFLA_VXLAN_LEARNING, b"\0") + attr(IFLA_VXLAN_PORT, struct.pack("!H", port))
        info = attr(IFLA_INFO_KIND, b"vxlan") + attr(IFLA_INFO_DATA, data)
        payload = _IFINFO.pack(0, 0, 0, IFF_NOARP, IFF_NOARP) + attr(IFLA_IFNAME, name)
        payload += attr(IFLA_ADDRESS, mac_bytes(mac)) + attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL)

    def index(self, name: str) -> int | None:
        """The ifindex of link ``name`` in this netns, or None if there is none."""
        seq = self._send(RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name))
        while True:
            for msg_type, msg_seq, body in self._messages():
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code in (errno.ENODEV, errno.ENOENT):
                        return None
                    raise OSError(code, os.strerror(code))
                index: int = _IFINFO.unpack_from(body)[2]
                return index

    def links(self) -> list[Link]:
        out = []
        for body in self.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0)):
            index = _IFINFO.unpack_from(body)[2]
            attrs = parse_attrs(body[_IFINFO.size :])
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
            alias = attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode()
            out.append(Link(index, name, alias))
        return out

    def set_up(self, index: int, up: bool = True) -> None:
        self.request(RTM_NEWLINK, _IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP))

    def delete_link(self, index: int) -> None:
        """Delete a link; a link that is already gone is fine."""
        try:
            self.request(RTM_DELLINK, _IFINFO.pack(0, 0, index, 0, 0))
        except OSError as exc:
            if exc.errno not in (errno.ENODEV, errno.ENOENT):
                raise

    # addresses, routes, neighbours ----------------------------------------------------------------
    def add_address(self, index: int, address: ipaddress.IPv4Address, prefixlen: int = 32) -> None:
        payload = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        payload += attr(IFA_LOCAL, address.packed) + attr(IFA_ADDRESS, address.packed)
        self.request(RTM_NEWADDR, payload, NLM_F_CREATE | NLM_F_EXCL)

    def delete_address(self, index: int, address: ipaddress.IPv4Address, prefixlen: int) -> None:
        """Remove an address; one that is not there is fine."""
        payload = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        payload += attr(IFA_LOCAL, address.packed)
        try:
            self.request(RTM_DELADDR, payload)
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.ENOENT):
                raise

    def add_route(
        self,
        destination: ipaddress.IPv4Network,
        *,
        oif: int | None = None,
        gateway: ipaddress.IPv4Address | None = None,
        source: ipaddress.IPv4Address | None = None,
        metric: int | None = None,
        unreachable: bool = False,
    ) -> None:
        """A route in the main table; with a gateway it is ``onlink`` (the gateway need not be in a
        subnet of the link, so shells carry /32 addresses and no connected routes)."""
        self._route(
            RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, destination, oif, gateway, source, metric, unreachable
        )

    def delete_route(
        self,
        destination: ipaddress.IPv4Network,
        *,
        unreachable: bool = False,
        oif: int | None = None,
        metric: int | None = None,
    ) -> None:
        """Delete a route (the one through ``oif`` with ``metric`` when given); a missing one is fine."""
        try:
            self._route(RTM_DELROUTE, 0, destination, oif, None, None, metric, unreachable)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise

    def _route(
        self,
        kind: int,
        flags: int,
        destination: ipaddress.IPv4Network,
        oif: int | None,
        gateway: ipaddress.IPv4Address | None,
        source: ipaddress.IPv4Address | None,
        metric: int | None,
        unreachable: bool,
    ) -> None:
        scope = RT_SCOPE_UNIVERSE if gateway is not None or unreachable else RT_SCOPE_LINK
        rtype = RTN_UNREACHABLE if unreachable else RTN_UNICAST
        rt_flags = RTNH_F_ONLINK if gateway is not None else 0
        payload = _RTMSG.pack(
            socket.AF_INET, destination.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_SHELLS, scope, rtype, rt_flags
        )
        if destination.prefixlen:
            payload += attr(RTA_DST, destination.network_address.packed)
        if oif is not None:
            payload += attr(RTA_OIF, oif)
        if gateway is not None:
            payload += attr(RTA_GATEWAY, gateway.packed)
        if source is not None:
            payload += attr(RTA_PREFSRC, source.packed)
        if metric is not None:
            payload += attr(RTA_PRIORITY, metric)
        self.request(kind, payload, flags)

    def routes(self) -> list[ipaddress.IPv4Network]:
        """Destinations of every IPv4 route in the main table (the default route as 0.0.0.0/0)."""
        out = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            family, dst_len, _, _, table, *_rest = _RTMSG.unpack_from(body)
            attrs = parse_attrs(body[_RTMSG.size :])
            real_table = struct.unpack("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else table
            if family != socket.AF_INET or real_table != RT_TABLE_MAIN:
                continue
            dst = attrs.get(RTA_DST, b"\0\0\0\0")
            out.append(ipaddress.IPv4Network((dst, dst_len)))
        return out

    def add_permanent_neighbour(self, index: int, address: ipaddress.IPv4Address, mac: str) -> None:
        payload = _NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0)
        payload += attr(NDA_DST, address.packed) + attr(NDA_LLADDR, mac_bytes(mac))
        self.request(RTM_NEWNEIGH, payload, NLM_F_CREATE | NLM_F_EXCL)

    def set_neighbour(self, index: int, address: ipaddress.IPv4Address, mac: str) -> None:
        """A permanent neighbour entry, replacing one for the same address."""
        payload = _NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0)
        payload += attr(NDA_DST, address.packed) + attr(NDA_LLADDR, mac_bytes(mac))
        self.request(RTM_NEWNEIGH, payload, NLM_F_CREATE | NLM_F_REPLACE)

    def delete_neighbour(self, index: int, address: ipaddress.IPv4Address) -> None:
        payload = _NDMSG.pack(socket.AF_INET, index, 0, 0, 0) + attr(NDA_DST, address.packed)
        _tolerate_missing(lambda: self.request(RTM_DELNEIGH, payload))

    def set_fdb(self, index: int, mac: str, destination: ipaddress.IPv4Address) -> None:
        """A static forwarding entry of a VXLAN link: frames for ``mac`` go to ``destination``."""
        payload = _NDMSG.pack(socket.AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0)
        payload += attr(NDA_LLADDR, mac_bytes(mac)) + attr(NDA_DST, destination.packed)
        self.request(RTM_NEWNEIGH, payload, NLM_F_CREATE | NLM_F_REPLACE)

    def delete_fdb(self, index: int, mac: str, destination: ipaddress.IPv4Address) -> None:
        payload = _NDMSG.pack(socket.AF_BRIDGE, index, NUD_PERMANENT, NTF_SELF, 0)
        payload += attr(NDA_LLADDR, mac_bytes(mac)) + attr(NDA_DST, destination.packed)
        _tolerate_missing(lambda: self.request(RTM_DELNEIGH, payload))


def _tolerate_missing(step: Callable[[], None]) -> None:
    try:
        step()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ESRCH, errno.ENODEV):
            raise


def open_in_netns(netns_path: str, sysctls: dict[str, str] | None = None) -> Netlink:
    """A netlink socket inside the netns at ``netns_path``, after writing ``sysctls`` there."""

    def inside() -> Netlink:
        for key, value in (sysctls or {}).items():
            write_sysctl(key, value)
        return Netlink()

    return run_in_netns(netns_path, inside)


def write_sysctl(key: str, value: str) -> None:
    """Write one sysctl of the calling thread's netns (``net.ipv6.conf.eth0.accept_ra`` style keys;
    interface names never contain dots here)."""
    with open(f"/proc/sys/{key.replace('.', '/')}", "w") as f:
        f.write(value)


def read_sysctl(key: str) -> str:
    with open(f"/proc/sys/{key.replace('.', '/')}") as f:
        return f.read().strip()
