"""The nftables objects of one instance, as text for :class:`~.libnftables.Nftables`. Pure.

One ``inet`` table ``shells_<instance>`` holds everything. Shell traffic is recognised by the
host-side port it arrives on (``sh<instance>*``); nothing else on the host is touched (every base
chain accepts foreign traffic first, and ``accept`` in one table does not bypass other tables).

    spoof_guard  prerouting, raw    a port may only send from its own address (``sources``); IPv6
                                    is not routed, so all of it is counted and dropped, before
                                    conntrack ever sees the packet. An overlay link (``v<instance>*``,
                                    :mod:`.overlay`) may only deliver from the remote members behind
                                    it (``overlay_sources``), and the VXLAN port takes underlay
                                    packets only from peer nodes (``overlay_peers``)
    to_host      input              only DNS to the gateway; the host's addresses and services,
                                    the Shells API included, are refused; nothing from an overlay
    routed       forward            from an overlay link: members of one network only; a shell's
                                    packets to a peer node's address are counted and dropped;
                                    replies; members of one private network to each other
                                    (``private_pairs``); then the shell's own policy chain
                                    ``s<slot>`` (via ``policy_of``); anything else is counted by
                                    ``d<slot>`` (via ``count_of``) and refused. Nothing outside
                                    may open a connection to a shell.
    nat_out      postrouting, nat   masquerade what leaves for the outside (not into an overlay)
    egress_in    prerouting, nat    a shell's chain ``e<slot>`` (via ``egress_of``): for a shell
                                    with secrets, TCP to port 443 outside the refused ranges goes
                                    to the egress proxy on the gateway (``runtime/network/egress``)

Per shell (``slot``): ``s<slot>`` accepts what the policy allows; ``d<slot>`` counts a refused
packet in ``b<slot>`` (IPv4) or ``v<slot>`` (IPv6), dynamic sets keyed by destination, protocol
and port, with a counter per element, a size cap (a flood of new destinations cannot grow them) and
an idle timeout. Allow lists live in ``a<slot>`` (any protocol), ``q<slot>`` (one protocol) and
``p<slot>`` (protocol and port): split by shape because interval elements of one set must not
overlap, and CIDRs of one shape either nest (collapsed here) or are disjoint. ``a<slot>`` is keyed
by address *and* protocol too, its elements spanning every protocol (``net . 0-255``): libnftables
reads the elements of every single-field interval set in the host's ruleset before each batch that
adds or deletes an element (to merge ranges), so one such set per shell made every shell's create
and delete read every other shell's allow list (at 1,000 shells an attach took 0.6 s, 0.1 s now:
``benchmarks/bench_nft_scale.py``). Concatenated sets are not read; the per-shell sets are all of
that kind.

Every refused packet also puts its shell's slot in the shared set ``dropped`` (refreshed by each
one, gone ``DROPPED_TIMEOUT_S`` after the last): the once-a-second drain of refused attempts reads
that set and lists the counters of those shells only, not every shell's.

Refused packets from a shell are answered, so a blocked ``connect()`` fails at once instead of
hanging: TCP with a reset (ECONNREFUSED), anything else with ICMP "administratively prohibited"
(EHOSTUNREACH; the kernel rate-limits ICMP errors per destination, a reset is not limited).
Spoofed and IPv6 packets are only dropped.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shells.domain.network import AllowRule, NetworkAccess, NetworkMode, Protocol

from .addressing import MAX_SLOTS

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

FORBIDDEN4 = (
    "0.0.0.0/8",  # "this network"
    "127.0.0.0/8",  # loopback (martian on the wire anyway)
    "169.254.0.0/16",  # link-local: every cloud's metadata service (169.254.169.254) lives here
    "224.0.0.0/3",  # multicast, reserved and broadcast
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure platform (wire server)
)
"""Never reachable from a shell, whatever its allow list says."""

PRIVATE4 = (
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT
    "172.16.0.0/12",
    "192.168.0.0/16",
    "192.0.0.0/24",  # IETF protocol assignments
    "198.18.0.0/15",  # benchmarking
)
"""Not "the internet": refused to an ``internet`` shell without an allow list, but an allow list may
name them. The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) count as public,
which is what lets the tests stand up "the internet" on this machine."""

BLOCKED_TIMEOUT_S = 3600
BLOCKED_SIZE = 1024
BLOCKED6_SIZE = 256
DROPPED_TIMEOUT_S = BLOCKED_TIMEOUT_S + 120
"""How long a shell stays in ``dropped`` after its last refused packet: longer than any of its
``b/f/v/g`` elements lives, so the drain that sees the last of them expire still lists the shell."""
MIN_RESOLVED_TTL_S = 30
_PORTED = "{ tcp, udp, sctp }"
PROXY_PORT = 15443
"""Where the egress proxy listens on the gateway address (reached only through the DNAT)."""
PROXY_DSCP = 0x2D
"""The DSCP of the egress proxy's own upstream packets, which the DNAT lets by."""
ALL_PROTOCOLS_KEY = "ipv4_addr . inet_proto"
"""The key of ``a<slot>``: an address and a protocol, its elements covering every protocol."""


@dataclass(frozen=True)
class AllowElements:
    """The allow-list set elements of one policy (IPv4 only: IPv6 is not routed)."""

    any: tuple[IPv4Network, ...] = ()
    proto: tuple[tuple[IPv4Network, Protocol], ...] = ()
    port: tuple[tuple[IPv4Network, Protocol, int], ...] = ()

    def holds(self, address: IPv4Address, proto: Protocol | None, port: int | None) -> bool:
        """Whether the element of that shape for ``address`` is already there (adding it again
        would overlap, which interval sets refuse)."""
        if port is not None:
            return any(address in n and p is proto and q == port for n, p, q in self.port)
        if proto is not None:
            return any(address in n and p is proto for n, p in self.proto)
        return any(address in n for n in self.any)


def allow_elements(rules: Iterable[AllowRule]) -> AllowElements:
    """Group the address rules by shape and collapse nested CIDRs within each group."""
    groups: dict[tuple[Protocol | None, int | None], list[IPv4Network]] = defaultdict(list)
    for rule in rules:
        net = rule.network
        if not isinstance(net, IPv4Network):
            continue
        for proto in rule.protocols or (None,):
            groups[(proto, rule.port)].append(net)
    any_: list[IPv4Network] = []
    proto_: list[tuple[IPv4Network, Protocol]] = []
    port_: list[tuple[IPv4Network, Protocol, int]] = []
    for (proto, port), nets in sorted(groups.items(), key=str):
        for net in ipaddress.collapse_addresses(nets):
            if proto is None:
                any_.append(net)
            elif port is None:
                proto_.append((net, proto))
            else:
                port_.append((net, proto, port))
    return AllowElements(tuple(any_), tuple(proto_), tuple(port_))


def table_name(instance: str) -> str:
    return f"inet shells_{instance}"


@dataclass(frozen=True)
class Ruleset:
    instance: str
    gateway: IPv4Address
    cidr: IPv4Network
    overlay_port: int = 4789
    """The UDP port of the overlay between nodes (``Settings.overlay_port``)."""

    @property
    def table(self) -> str:
        return table_name(self.instance)

    @property
    def ports(self) -> str:
        return f'"sh{self.instance}*"'

    @property
    def overlays(self) -> str:
        return f'"v{self.instance}*"'

    # the instance -----------------------------------------------------------------------------
    def base(self) -> str:
        """Declare the table, then rewrite its base chains and the constant sets. Idempotent: run at
        every start-up, it keeps per-shell objects (and their counters) as they are."""
        t, ports, overlays = self.table, self.ports, self.overlays
        forbidden = [*FORBIDDEN4, str(self.cidr)]
        lines = [
            f"add table {t}",
            f"add set {t} forbidden4 {{ type ipv4_addr; flags interval; auto-merge; }}",
            f"add set {t} nonpublic4 {{ type ipv4_addr; flags interval; auto-merge; }}",
            f"add set {t} sources {{ type ifname . ipv4_addr; }}",
            f"add set {t} private_pairs {{ type ipv4_addr . ipv4_addr; flags interval; }}",
            f"add set {t} overlay_sources {{ type ifname . ipv4_addr; }}",
            f"add set {t} overlay_peers {{ type ipv4_addr; }}",
            f"add set {t} overlay_local {{ type ipv4_addr; }}",
            f"add map {t} policy_of {{ type ifname : verdict; }}",
            f"add map {t} count_of {{ type ifname : verdict; }}",
            f"add map {t} egress_of {{ type ifname : verdict; }}",
            f"add set {t} dropped {{ type mark; flags dynamic, timeout; timeout {DROPPED_TIMEOUT_S}s; "
            f"size {MAX_SLOTS}; }}",
            f"add chain {t} spoof_guard {{ type filter hook prerouting priority raw; policy accept; }}",
            f"add chain {t} to_host {{ type filter hook input priority filter; policy accept; }}",
            f"add chain {t} routed {{ type filter hook forward priority filter; policy accept; }}",
            f"add chain {t} nat_out {{ type nat hook postrouting priority srcnat; policy accept; }}",
            f"add chain {t} egress_in {{ type nat hook prerouting priority dstnat; policy accept; }}",
            f"flush set {t} forbidden4",
            f"flush set {t} nonpublic4",
            f"add element {t} forbidden4 {{ {', '.join(forbidden)} }}",
            f"add element {t} nonpublic4 {{ {', '.join([*forbidden, *PRIVATE4])} }}",
        ]
        for chain in ("spoof_guard", "to_host", "routed", "nat_out", "egress_in"):
            lines.append(f"flush chain {t} {chain}")
        rules = {
            "spoof_guard": [
                f"ip daddr @overlay_local udp dport {self.overlay_port} ip saddr != @overlay_peers drop",
                f"iifname {overlays} iifname . ip saddr @overlay_sources accept",
                f"iifname {overlays} drop",
                f"iifname != {ports} accept",
                "meta nfproto ipv6 iifname vmap @count_of",
                "meta nfproto ipv6 drop",
                "iifname . ip saddr @sources accept",
                "iifname vmap @count_of",
                "drop",
            ],
            "to_host": [
                f"iifname {overlays} drop",
                f"iifname != {ports} accept",
                "ct state established,related accept",
                f"ip daddr {self.gateway} meta l4proto {{ tcp, udp }} th dport 53 accept",
                f"ip daddr {self.gateway} tcp dport {PROXY_PORT} ct status dnat accept",
                "iifname vmap @count_of",
                "meta l4proto tcp reject with tcp reset",
                "reject with icmpx admin-prohibited",
            ],
            "routed": [
                f"iifname {overlays} oifname {ports} ip saddr . ip daddr @private_pairs accept",
                f"iifname {overlays} drop",
                f"iifname {ports} ip daddr @overlay_peers iifname vmap @count_of",
                f"iifname {ports} ip daddr @overlay_peers drop",
                f"iifname != {ports} oifname != {ports} accept",
                "ct state established,related accept",
                f"iifname {ports} ip saddr . ip daddr @private_pairs accept",
                f"iifname {ports} oifname != {ports} iifname vmap @policy_of",
                f"iifname {ports} iifname vmap @count_of",
                f"iifname {ports} meta l4proto tcp reject with tcp reset",
                f"iifname {ports} reject with icmpx admin-prohibited",
                "drop",
            ],
            "nat_out": [f"ip saddr {self.cidr} oifname != {ports} oifname != {overlays} masquerade"],
            "egress_in": [f"iifname {ports} iifname vmap @egress_of"],
        }
        for chain, body in rules.items():
            lines.extend(f"add rule {t} {chain} {rule}" for rule in body)
        return "\n".join(lines) + "\n"

    def reset_shared(self) -> str:
        """Empty the sets and maps that are rebuilt from the records at start-up."""
        t = self.table
        return (
            "\n".join(
                [
                    f"flush set {t} sources",
                    f"flush set {t} private_pairs",
                    f"flush set {t} overlay_sources",
                    f"flush set {t} overlay_peers",
                    f"flush set {t} overlay_local",
                    f"flush map {t} policy_of",
                    f"flush map {t} count_of",
                    f"flush map {t} egress_of",
                ]
            )
            + "\n"
        )

    def delete_table(self) -> str:
        return f"delete table {self.table}\n"

    # one shell --------------------------------------------------------------------------------
    def shell_objects(self, slot: int) -> str:
        """Create a shell's sets and chains (idempotent) and its counting rules."""
        t = self.table
        v4, v6 = "ipv4_addr . inet_proto . inet_service", "ipv6_addr . inet_proto . inet_service"
        dynamic = f"flags dynamic, timeout; timeout {BLOCKED_TIMEOUT_S}s"
        lines = [
            f"add set {t} a{slot} {{ type {ALL_PROTOCOLS_KEY}; flags interval, timeout; }}",
            f"add set {t} q{slot} {{ type ipv4_addr . inet_proto; flags interval, timeout; }}",
            f"add set {t} p{slot} {{ type {v4}; flags interval, timeout; }}",
            f"add set {t} b{slot} {{ type {v4}; {dynamic}; size {BLOCKED_SIZE}; counter; }}",
            f"add set {t} f{slot} {{ type {v4}; {dynamic}; size {BLOCKED_SIZE}; }}",
            f"add set {t} v{slot} {{ type {v6}; {dynamic}; size {BLOCKED6_SIZE}; counter; }}",
            f"add set {t} g{slot} {{ type {v6}; {dynamic}; size {BLOCKED6_SIZE}; }}",
            f"add chain {t} s{slot}",
            f"add chain {t} d{slot}",
            f"add chain {t} e{slot}",
            f"flush chain {t} d{slot}",
            f"add rule {t} d{slot} update @dropped {{ {slot} }}",
        ]
        for family, daddr, counted, first in (("ipv4", "ip", "b", "f"), ("ipv6", "ip6", "v", "g")):
            for match, port in ((_PORTED, "th dport"), (f"!= {_PORTED}", "0")):
                for op, name in (("update", counted), ("add", first)):
                    lines.append(
                        f"add rule {t} d{slot} meta nfproto {family} meta l4proto {match} "
                        f"{op} @{name}{slot} {{ {daddr} daddr . meta l4proto . {port} }}"
                    )
        return "\n".join(lines) + "\n"

    def shell_chain(self, slot: int, policy: NetworkAccess) -> str:
        """Rewrite ``s<slot>``: what the shell may open to the outside under ``policy``."""
        t = self.table
        lines = [f"flush chain {t} s{slot}"]
        if policy.mode is NetworkMode.INTERNET and not policy.restricted:
            lines.append(f"add rule {t} s{slot} ip daddr != @nonpublic4 accept")
        elif policy.mode is NetworkMode.INTERNET:
            lines += [
                f"add rule {t} s{slot} ip daddr @forbidden4 return",
                f"add rule {t} s{slot} ip daddr . meta l4proto @a{slot} accept",
                f"add rule {t} s{slot} ip daddr . meta l4proto @q{slot} accept",
                f"add rule {t} s{slot} meta l4proto {{ tcp, udp }} "
                f"ip daddr . meta l4proto . th dport @p{slot} accept",
            ]
        return "\n".join(lines) + "\n"

    def drop_allow_any(self, slot: int) -> str:
        """Remove ``a<slot>`` and the rules that use it (an older server made it with another key;
        :meth:`shell_objects` then makes it again, :meth:`shell_chain` the rules)."""
        return f"flush chain {self.table} s{slot}\ndelete set {self.table} a{slot}\n"

    def shell_egress(self, slot: int, brokered: bool) -> str:
        """Rewrite ``e<slot>``: whether the shell's HTTPS goes through the egress proxy."""
        t = self.table
        lines = [f"flush chain {t} e{slot}"]
        if brokered:
            lines.append(
                f"add rule {t} e{slot} meta l4proto tcp th dport 443 ip dscp != {PROXY_DSCP:#x} "
                f"ip daddr != @forbidden4 dnat ip to {self.gateway}:{PROXY_PORT}"
            )
        return "\n".join(lines) + "\n"

    def shell_allow(self, slot: int, policy: NetworkAccess) -> str:
        """Refill the allow sets with ``policy``'s addresses and networks. Addresses resolved for
        the old policy go too; the resolver adds them again at the next lookup."""
        t = self.table
        lines = [f"flush set {t} {k}{slot}" for k in "aqp"]
        if policy.mode is NetworkMode.INTERNET:
            elements = allow_elements(policy.rules)
            lines += _elements(t, slot, elements.any, elements.proto, elements.port, timeout=None)
        return "\n".join(lines) + "\n"

    def resolved(
        self, slot: int, rule: AllowRule, addresses: Sequence[IPv4Address], ttl_s: int, static: AllowElements
    ) -> str:
        """Elements that admit ``addresses`` (just resolved for host rule ``rule``) for ``ttl_s``;
        those the static elements already hold are left out."""
        any_: list[IPv4Network] = []
        proto: list[tuple[IPv4Network, Protocol]] = []
        port: list[tuple[IPv4Network, Protocol, int]] = []
        port_ = rule.port
        for address in addresses:
            net = IPv4Network(address)
            if port_ is not None:
                port += [(net, p, port_) for p in rule.protocols if not static.holds(address, p, port_)]
            elif rule.protocol is not None:
                if not static.holds(address, rule.protocol, None):
                    proto.append((net, rule.protocol))
            elif not static.holds(address, None, None):
                any_.append(net)
        lines = _elements(self.table, slot, any_, proto, port, max(ttl_s, MIN_RESOLVED_TTL_S))
        return "\n".join(lines) + "\n" if lines else ""

    def ports_change(self, verb: str, ports: Iterable[tuple[str, int, IPv4Address]]) -> str:
        """``add`` or ``delete`` the shared entries of host-side ports (name, slot, address)."""
        t, lines = self.table, []
        for name, slot, address in ports:
            if verb == "add":
                lines += [
                    f'add element {t} sources {{ "{name}" . {address} }}',
                    f'add element {t} policy_of {{ "{name}" : jump s{slot} }}',
                    f'add element {t} count_of {{ "{name}" : jump d{slot} }}',
                    f'add element {t} egress_of {{ "{name}" : jump e{slot} }}',
                ]
            else:
                lines += [
                    f'delete element {t} sources {{ "{name}" . {address} }}',
                    f'delete element {t} policy_of {{ "{name}" }}',
                    f'delete element {t} count_of {{ "{name}" }}',
                    f'delete element {t} egress_of {{ "{name}" }}',
                ]
        return "\n".join(lines) + "\n" if lines else ""

    @staticmethod
    def shell_object_names(slot: int) -> list[str]:
        """A shell's chains, then its sets (a set cannot go while a rule still uses it)."""
        return [f"s{slot}", f"d{slot}", f"e{slot}", *(f"{k}{slot}" for k in "aqpbfvg")]

    def forget_dropped(self, slot: int) -> str:
        """Take ``slot`` out of ``dropped`` (added first, so the deletion cannot miss): a shell that
        reuses the slot starts unmarked."""
        element = f"{self.table} dropped {{ {slot} }}"
        return f"add element {element}\ndelete element {element}\n"

    def drop_objects(self, name: str) -> str:
        kind = "chain" if name[0] in "sde" else "set"
        return f"delete {kind} {self.table} {name}\n"

    def overlay_sets(
        self,
        sources: Iterable[tuple[str, IPv4Address]],
        peers: Iterable[IPv4Address],
        local: Iterable[IPv4Address],
    ) -> str:
        """Refill the overlay's sets: (link, remote member) pairs, peer nodes, this node's address."""
        t = self.table
        lines = [f"flush set {t} {name}" for name in ("overlay_sources", "overlay_peers", "overlay_local")]
        groups = {
            "overlay_sources": [f'"{link}" . {a}' for link, a in sources],
            "overlay_peers": [str(a) for a in peers],
            "overlay_local": [str(a) for a in local],
        }
        lines += [f"add element {t} {k} {{ {', '.join(v)} }}" for k, v in groups.items() if v]
        return "\n".join(lines) + "\n"

    def network_change(self, verb: str, cidr: IPv4Network) -> str:
        return f"{verb} element {self.table} private_pairs {{ {cidr} . {cidr} }}\n"


def _elements(
    table: str,
    slot: int,
    any_: Iterable[IPv4Network],
    proto: Iterable[tuple[IPv4Network, Protocol]],
    port: Iterable[tuple[IPv4Network, Protocol, int]],
    timeout: int | None,
) -> list[str]:
    suffix = f" timeout {timeout}s" if timeout else ""
    groups = {
        "a": [f"{n} . 0-255{suffix}" for n in any_],
        "q": [f"{n} . {p.value}{suffix}" for n, p in proto],
        "p": [f"{n} . {p.value} . {q}{suffix}" for n, p, q in port],
    }
    return [f"add element {table} {k}{slot} {{ {', '.join(v)} }}" for k, v in groups.items() if v]
