"""Turn the kernel's per-shell drop counters into :class:`BlockedAttempt` records. Pure.

Each refused packet updates two elements keyed by (destination, protocol, port): one in ``b<slot>``
(``update``: a packet counter, and the idle timeout restarts, so its remaining time dates the last
attempt) and one in ``f<slot>`` (``add``: never refreshed, so its remaining time dates the first).
IPv6 has the same pair as ``v<slot>`` and ``g<slot>``. Reading never resets a counter: a drain reports
the growth since the counts it saw last (kept in the shell's record), so no attempt that lands
between a read and a reset is lost. A counter smaller than the one seen last belongs to an element
that expired and came back, and counts from zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shells.domain.network import BlockedAttempt

PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
_PORTED = {"tcp", "udp", "sctp", "udplite"}
_SET_NAME = re.compile(r"^([bfvg])([0-9]+)$")


@dataclass(frozen=True)
class Counted:
    """One element of a counting set, with the times its expiry implies."""

    key: str
    destination: str
    protocol: str
    port: int | None
    packets: int
    last_seen: datetime
    first_seen: datetime


def counted_by_slot(sets: list[dict[str, Any]], now: datetime, timeout_s: int) -> dict[int, list[Counted]]:
    """Group the elements of every ``b/v`` set (with first times from ``f/g``) by shell slot.

    ``sets`` is the ``set`` objects of ``nft -j list sets`` for the instance's table."""
    counters: dict[int, dict[str, tuple[str, str, int | None, int, datetime]]] = {}
    firsts: dict[int, dict[str, datetime]] = {}
    for item in sets:
        s = item["set"]
        match = _SET_NAME.match(s.get("name", ""))
        if match is None:
            continue
        kind, slot = match[1], int(match[2])
        for elem in s.get("elem", []):
            body = elem["elem"] if isinstance(elem, dict) and "elem" in elem else {"val": elem}
            address, proto, port = _key(body["val"])
            key = f"{address}|{proto}|{port}"
            seen_at = now - timedelta(seconds=timeout_s - int(body.get("expires", timeout_s)))
            if kind in "bv":
                packets = int(body.get("counter", {}).get("packets", 0))
                counters.setdefault(slot, {})[key] = (address, proto, port, packets, seen_at)
            else:
                firsts.setdefault(slot, {})[key] = seen_at
    out: dict[int, list[Counted]] = {}
    for slot, elements in counters.items():
        for key, (address, proto, port, packets, last) in elements.items():
            first = min(firsts.get(slot, {}).get(key, last), last)
            out.setdefault(slot, []).append(Counted(key, address, proto, port, packets, last, first))
    return out


def _key(val: Any) -> tuple[str, str, int | None]:
    address, proto, port = val["concat"]
    name = PROTOCOL_NAMES.get(proto, str(proto)) if isinstance(proto, int) else str(proto)
    return str(address), name, (int(port) if name in _PORTED else None)


def growth(counted: list[Counted], seen: dict[str, int]) -> tuple[list[BlockedAttempt], dict[str, int]]:
    """Attempts since the packet counts in ``seen``, and the counts to remember for the next drain.

    A key's first report carries the first time its ``f`` element recorded; later reports of the
    same key start at their last time (the growth happened after the previous drain, no earlier),
    so merging reports by destination keeps the true first time."""
    attempts = []
    for c in counted:
        before = seen.get(c.key, 0)
        fresh = before == 0 or c.packets < before
        new = c.packets if fresh else c.packets - before
        if new > 0:
            first = c.first_seen if fresh else c.last_seen
            attempts.append(BlockedAttempt(c.destination, c.port, c.protocol, new, first, c.last_seen))
    return attempts, {c.key: c.packets for c in counted}
