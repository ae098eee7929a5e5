"""Forget the kernel's connection-tracking entries of addresses that leave (ctnetlink).

When a shell's port goes away, entries for its addresses would otherwise linger for hours
(established TCP) and could match a later shell that gets the same address. For a few addresses
the kernel filters the dump (``CTA_FILTER``: one dump per address and per side of the entry the
address may be on), so a shell's delete reads its own entries, not the host's whole table; the
host's other connections (every API request's loopback connection among them) made that cost
grow with everything else on the host. Anything else (a network at start-up) is read whole and
filtered here. What the kernel returns is matched again here either way.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Callable, Collection, Container

from .rtnl import Netlink, attr, parse_attrs

NETLINK_NETFILTER = 12
_CT_GET = (1 << 8) | 1  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
_CT_DELETE = (1 << 8) | 2  # IPCTNL_MSG_CT_DELETE
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE, CTA_FILTER = 1, 2, 18, 25
CTA_TUPLE_IP, CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 1, 2
CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS = 1, 2
FILTER_IP_SRC, FILTER_IP_DST = 1 << 0, 1 << 1
NLA_F_NESTED = 0x8000
FILTERED_AT_MOST = 16
"""Up to this many addresses, the kernel filters the dump (four dumps each); past it, one whole dump."""

_HEADER = struct.pack("=BBH", socket.AF_INET, 0, 0)  # nfgenmsg: family, version, resource id


def _matcher(wanted: Container[ipaddress.IPv4Address]) -> Callable[[bytes], bool]:
    """Whether a packed IPv4 address is one of ``wanted``. A set is compared as packed bytes: the
    dump holds every entry of the host, and an address object per entry cost most of a delete's
    reclaim on a busy host. Anything else (a network, a custom container) gets an address object."""
    if isinstance(wanted, set | frozenset):
        packed = {address.packed for address in wanted}
        return packed.__contains__
    return lambda raw: ipaddress.IPv4Address(raw) in wanted


def _names(tuple_attr: bytes, wanted: Callable[[bytes], bool]) -> bool:
    """Whether the tuple's source or destination address is wanted."""
    ip = parse_attrs(parse_attrs(tuple_attr).get(CTA_TUPLE_IP, b""))
    for key in (CTA_IP_V4_SRC, CTA_IP_V4_DST):
        raw = ip.get(key, b"")
        if len(raw) == 4 and wanted(raw):
            return True
    return False


def _filters(address: ipaddress.IPv4Address) -> list[bytes]:
    """Dump requests for the entries naming ``address``: as the source or the destination of the
    original or the reply direction (the kernel ANDs what one filter names, so one request each)."""
    requests = []
    for tuple_kind, flags_kind in (
        (CTA_TUPLE_ORIG, CTA_FILTER_ORIG_FLAGS),
        (CTA_TUPLE_REPLY, CTA_FILTER_REPLY_FLAGS),
    ):
        for ip_kind, flag in ((CTA_IP_V4_SRC, FILTER_IP_SRC), (CTA_IP_V4_DST, FILTER_IP_DST)):
            ip = attr(CTA_TUPLE_IP | NLA_F_NESTED, attr(ip_kind, address.packed))
            requests.append(
                _HEADER
                + attr(tuple_kind | NLA_F_NESTED, ip)
                + attr(CTA_FILTER | NLA_F_NESTED, attr(flags_kind, flag))
            )
    return requests


def _entries_naming(nl: Netlink, wanted: Container[ipaddress.IPv4Address]) -> list[dict[int, bytes]]:
    match = _matcher(wanted)
    if isinstance(wanted, set | frozenset) and len(wanted) <= FILTERED_AT_MOST:
        requests = [request for address in wanted for request in _filters(address)]
    else:
        requests = [_HEADER]
    found: dict[bytes, dict[int, bytes]] = {}  # by original tuple: one entry may match two filters
    for request in requests:
        for body in nl.dump(_CT_GET, request):
            attrs = parse_attrs(body[len(_HEADER) :])
            orig = attrs.get(CTA_TUPLE_ORIG, b"")
            if _names(orig, match) or _names(attrs.get(CTA_TUPLE_REPLY, b""), match):
                found.setdefault(orig + attrs.get(CTA_ZONE, b""), attrs)
    return list(found.values())


def forget(addresses: Container[ipaddress.IPv4Address]) -> int:
    """Delete every IPv4 entry whose original or reply tuple names an address in ``addresses`` (a
    set, a network, anything with ``in``); returns how many were deleted."""
    if isinstance(addresses, Collection) and not addresses:
        return 0
    deleted = 0
    with Netlink(NETLINK_NETFILTER) as nl:
        for attrs in _entries_naming(nl, addresses):
            request = _HEADER + attr(CTA_TUPLE_ORIG | NLA_F_NESTED, attrs[CTA_TUPLE_ORIG])
            if CTA_ZONE in attrs:
                request += attr(CTA_ZONE, attrs[CTA_ZONE])
            try:
                nl.request(_CT_DELETE, request)
                deleted += 1
            except OSError as exc:
                if exc.errno != errno.ENOENT:  # not "it expired meanwhile"
                    raise
    return deleted


def count(addresses: Container[ipaddress.IPv4Address]) -> int:
    """How many IPv4 entries name an address in ``addresses`` (for checks and tests)."""
    with Netlink(NETLINK_NETFILTER) as nl:
        return len(_entries_naming(nl, addresses))
