"""Forget the kernel's connection-tracking entries of addresses that leave (ctnetlink).

When a shell's port goes away, entries for its addresses would otherwise linger for hours
(established TCP) and could match a later shell that gets the same address. The dump is filtered
here rather than in the kernel, so the cost grows with the host's table (~1 µs per entry).
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
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE = 1, 2, 18
CTA_TUPLE_IP, CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 1, 2
NLA_F_NESTED = 0x8000

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


def _entries_naming(nl: Netlink, wanted: Container[ipaddress.IPv4Address]) -> list[dict[int, bytes]]:
    found = []
    match = _matcher(wanted)
    for body in nl.dump(_CT_GET, _HEADER):
        attrs = parse_attrs(body[len(_HEADER) :])
        if _names(attrs.get(CTA_TUPLE_ORIG, b""), match) or _names(attrs.get(CTA_TUPLE_REPLY, b""), match):
            found.append(attrs)
    return found


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
