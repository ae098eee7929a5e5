"""The host side of every shell's network: ports, addresses, policy, private networks, audit.

The shell's network namespace is the unit. The host creates it (so root in the shell has no
CAP_NET_ADMIN over it); :class:`HostNetwork` then gives it what its mode allows:

    sealed      nothing: ``lo`` stays down, no port, no route; connect() fails at once (ENETUNREACH)
    localhost   ``lo`` up, plus one port per private network the shell is on
    internet    ``lo`` up, the uplink ``eth0`` (default route, NAT), plus its private networks

A container's processes live in the netns directly; a microVM will put its tap device there and
forward it to ``eth0`` (the VM's NIC takes ``ShellAddresses.mac`` and ``ipv4``), so the same host
rules govern both. Ports, routes and the nftables rules are described in :mod:`.links` and
:mod:`.ruleset`; addresses and names in :mod:`.addressing`.

Changing a policy on a running shell rewrites its chain and allow sets in one nftables transaction,
opens or closes ports as the new mode needs, and forgets the shell's conntrack entries, so every
flow is judged again under the new rules (allowed ones carry on: loose TCP pick-up re-admits them).

Every method is synchronous and serialised by one lock; callers in async code run them in a worker
thread. What a restarted server needs is in ``<run_dir>/network`` (:mod:`.records`); ``prepare``
adopts it and removes what no record claims.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shells.domain.errors import Conflict, InvalidRequest, RuntimeFailure
from shells.domain.network import (
    AllowRule,
    BlockedAttempt,
    NetworkAccess,
    PrivateNetwork,
)
from shells.settings import Settings

from . import conntrack
from .addressing import (
    GATEWAY_MAC,
    PORTS_PER_SHELL,
    InstanceRange,
    check_override,
    choose_range,
    gateway_link,
    lowest_free,
    parse_port_name,
    port_name,
    shell_mac,
)
from .blocked import counted_by_slot, growth
from .dns_upstream import nameservers
from .libnftables import Nftables, NftError
from .links import VethLink, ensure_gateway, remove_gateway, shell_links
from .overlay import Members, Overlays, Plan
from .reaper import Reaper
from .records import Ledger, Membership, ShellNet
from .rtnl import Netlink, read_sysctl, write_sysctl
from .ruleset import BLOCKED_TIMEOUT_S, Ruleset, allow_elements, table_name

log = logging.getLogger(__name__)
RESOLV_CONF = Path("/etc/resolv.conf")
FEW_DROPPING = 16
"""Up to this many shells with refused packets, the drain lists each one's four sets; past it, one
listing of the whole table costs less."""

IPv4Address = ipaddress.IPv4Address
IPv6Address = ipaddress.IPv6Address
IPv4Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class ShellAddresses:
    """Where a shell is on the network. ``ipv4`` is the uplink address (None unless ``internet``)."""

    ipv4: IPv4Address | None
    mac: str
    gateway: IPv4Address
    gateway_mac: str
    networks: dict[str, IPv4Address]

    @property
    def nameserver(self) -> IPv4Address:
        """The resolver every shell must use (the gateway; the DNS resolver listens there)."""
        return self.gateway


class HostNetwork:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance = settings.instance_id
        self.ledger = Ledger(settings.run_dir / "network")
        self.gateway_link = gateway_link(self.instance)
        self._lock = threading.RLock()
        self._range: InstanceRange | None = None
        self._nft: Nftables | None = None
        self._shells: dict[str, ShellNet] = {}
        self._networks: dict[str, PrivateNetwork] = {}
        self._pending: list[tuple[str, BlockedAttempt]] = []
        self._drained_all = False
        """Whether this run's first drain (of every shell) is done."""
        self._reaping: set[int] = set()
        self._reaper = Reaper(self._released)
        self._overlays = Overlays(self.instance)

    # plumbing -------------------------------------------------------------------------------------
    @property
    def range(self) -> InstanceRange:
        if self._range is None:
            raise RuntimeFailure("The host network is not prepared; call HostNetwork.prepare() first.")
        return self._range

    @property
    def rules(self) -> Ruleset:
        return Ruleset(self.instance, self.range.gateway, self.range.cidr, self.settings.overlay_port)

    @property
    def nft(self) -> Nftables:
        if self._nft is None:
            self._nft = Nftables()
        return self._nft

    def _shell(self, host_id: str) -> ShellNet:
        shell = self._shells.get(host_id)
        if shell is None:
            raise RuntimeFailure(f"Shell {host_id} has no network attached on this host.")
        return shell

    def _ports(self, shell: ShellNet) -> list[VethLink]:
        """The ports the shell's mode and memberships call for."""
        ports = []
        if shell.uplink_open:
            address = self.range.uplink_address(shell.slot)
            ports.append(
                VethLink(self._port_name(shell, 0), "eth0", shell_mac(shell.slot, 0), address, None, 0)
            )
        if shell.ports_open:
            for m in sorted(shell.memberships.values(), key=lambda m: m.index):
                cidr = self._networks[m.net_id].cidr
                name = self._port_name(shell, m.index)
                ports.append(
                    VethLink(name, f"eth{m.index}", shell_mac(shell.slot, m.index), m.address, cidr, m.index)
                )
        return ports

    def _port_name(self, shell: ShellNet, index: int) -> str:
        return port_name(self.instance, shell.slot, index)

    def _port_entries(self, shell: ShellNet, ports: Sequence[VethLink]) -> list[tuple[str, int, IPv4Address]]:
        return [(p.name, shell.slot, p.address) for p in ports]

    def _addresses_of(self, shell: ShellNet) -> set[IPv4Address]:
        return {self.range.uplink_address(shell.slot), *(m.address for m in shell.memberships.values())}

    def _released(self, slot: int) -> None:
        with self._lock:
            self._reaping.discard(slot)

    def settle(self) -> None:
        """Wait until the ports of detached shells are deleted and their connections forgotten."""
        self._reaper.settle()

    # start-up -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make the host ready and adopt what a previous server process left. Idempotent."""
        self.settle()
        with self._lock:
            self.ledger.ensure()
            if read_sysctl("net.ipv4.ip_forward") != "1":
                write_sysctl("net.ipv4.ip_forward", "1")
            records = self.ledger.shells()
            self._range = InstanceRange(self._choose_range(bool(records)))
            with Netlink() as host:
                ensure_gateway(host, self.gateway_link, self.range.gateway, self.range.cidr)
                self._overlays.remove_all(host)  # the control plane sends the plan again
            self._networks = {n.id: n for n in self.ledger.networks()}
            self._shells = {r.host_id: r for r in records}
            for gone in (r for r in records if not Path(r.netns).exists()):
                log.info("shell %s lost its netns while the server was away; releasing it", gone.host_id)
                self.detach(gone.host_id)  # reports its last refused attempts, too
            self._adopt(list(self._shells.values()))

    def _choose_range(self, shells_recorded: bool) -> IPv4Network:
        stored, wanted = self.ledger.read_range(), self.settings.network_cidr
        if stored is not None and wanted in (None, stored):
            return stored
        if stored is not None and shells_recorded:
            raise InvalidRequest(
                f"SHELLS_NETWORK_CIDR changed from {stored} to {wanted} while shells of this instance run; "
                "stop them (or purge the instance) before changing it.",
                {"field": "SHELLS_NETWORK_CIDR"},
            )
        lock_path = self.settings.run_dir.parent / "network.lock"
        with lock_path.open("a") as lock:  # two instances starting at once must not pick the same range
            fcntl.flock(lock, fcntl.LOCK_EX)
            with Netlink() as host:
                taken = [r for r in host.routes() if r.prefixlen > 0 and r != stored]
            # a range that holds one of the host's nameservers would cut the host off from DNS
            taken += [IPv4Network(ns) for ns in nameservers(RESOLV_CONF) if ":" not in ns]
            if wanted is not None:
                check_override(wanted, taken)
                chosen = wanted
            else:
                chosen = choose_range(self.instance, taken)
            if stored is not None:
                with Netlink() as host:
                    remove_gateway(host, self.gateway_link, stored)
            self.ledger.write_range(chosen)
        return chosen

    def _adopt(self, alive: list[ShellNet]) -> None:
        """Rebuild the shared rules and sets from the records, keep each running shell's own sets
        (resolved addresses, counters), and remove links and nft objects no record claims."""
        rules = self.rules
        existing, legacy = self._existing_objects()
        batch = rules.base() + rules.reset_shared()
        batch += "".join(rules.network_change("add", n.cidr) for n in self._networks.values())
        for shell in alive:
            if shell.slot in legacy:  # an allow set of an older server: made again, then refilled
                batch += rules.drop_allow_any(shell.slot)
            batch += rules.shell_objects(shell.slot) + rules.shell_chain(shell.slot, shell.policy)
            batch += rules.shell_egress(shell.slot, shell.brokered)
            if f"a{shell.slot}" not in existing or shell.slot in legacy:
                batch += rules.shell_allow(shell.slot, shell.policy)
            batch += rules.ports_change("add", self._port_entries(shell, self._ports(shell)))
        slots = {s.slot for s in alive}
        orphans = [name for name in existing if _slot_of(name) not in slots]
        batch += "".join(rules.drop_objects(n) for n in sorted(orphans, key=lambda n: n[0] not in "sde"))
        self.nft.run(batch)
        claimed = {p.name for s in alive for p in self._ports(s)}
        with Netlink() as host:
            present = {link.name for link in host.links()}
            for link in host.links():
                if parse_port_name(self.instance, link.name) is not None and link.name not in claimed:
                    log.info("removing orphan port %s (of %s)", link.name, link.alias or "nobody")
                    host.delete_link(link.index)
        for shell in alive:  # a port someone deleted meanwhile comes back
            ports = self._ports(shell)
            if any(p.name not in present for p in ports):
                self._converge(shell, before=[p for p in ports if p.name in present])
        conntrack.forget(_Unclaimed(self.range.cidr, {a for s in alive for a in self._addresses_of(s)}))

    def _existing_objects(self) -> tuple[set[str], set[int]]:
        """Names of the per-shell chains and sets in the instance's table (none if no table), and
        the slots whose ``a<slot>`` still has an older server's key (one address only)."""
        try:
            items = self.nft.query(f"list table {self.rules.table}")
        except NftError as exc:
            if exc.missing:
                return set(), set()
            raise
        names = {obj["name"] for item in items for kind, obj in item.items() if kind in ("set", "chain")}
        legacy = {
            slot
            for item in items
            if (found := item.get("set")) is not None
            and found["name"].startswith("a")
            and (slot := _slot_of(found["name"])) is not None
            and found["type"] == "ipv4_addr"
        }
        return {n for n in names if _slot_of(n) is not None}, legacy

    # one shell ------------------------------------------------------------------------------------
    def attach(
        self,
        host_id: str,
        netns_path: str,
        policy: NetworkAccess,
        networks: Sequence[PrivateNetwork] = (),
        hostname: str | None = None,
        brokered: bool = False,
    ) -> ShellAddresses:
        """Give the shell whose netns is bound at ``netns_path`` what ``policy`` allows, and put it
        on ``networks`` (known to peers as ``hostname``, by default ``host_id``). A ``brokered``
        shell's HTTPS goes through the egress proxy (it has secrets)."""
        with self._lock:
            if host_id in self._shells:
                self.detach(host_id)
            used = {s.slot for s in self._shells.values()} | self._reaping
            slot = lowest_free(used, 0, self.range.slots, "shell address of this instance")
            shell = ShellNet(host_id, slot, netns_path, policy, brokered=brokered)
            self._shells[host_id] = shell
            try:
                for net in networks:
                    self._add_membership(shell, net, hostname or host_id)
                rules = self.rules
                objects = (
                    rules.shell_objects(slot)
                    + rules.shell_chain(slot, policy)
                    + rules.shell_allow(slot, policy)
                    + rules.shell_egress(slot, brokered)
                )
                self._converge(shell, before=[], objects=objects)
                self.ledger.save_shell(shell)
            except BaseException:
                self.detach(host_id)
                raise
            return self._describe(shell)

    def addresses(self, host_id: str) -> ShellAddresses:
        with self._lock:
            return self._describe(self._shell(host_id))

    def _describe(self, shell: ShellNet) -> ShellAddresses:
        return ShellAddresses(
            ipv4=self.range.uplink_address(shell.slot) if shell.uplink_open else None,
            mac=shell_mac(shell.slot, 0),
            gateway=self.range.gateway,
            gateway_mac=GATEWAY_MAC,
            networks={m.net_id: m.address for m in shell.memberships.values()},
        )

    def _converge(self, shell: ShellNet, before: Sequence[VethLink], objects: str = "") -> None:
        """Open and close ports (and set ``lo``) so the netns matches the shell's record; ``objects``
        (the shell's own chains and sets, at attach) go in the same transaction as the new ports'
        entries.

        The entries of a new port are in place before the port exists (nothing can match a name no
        link has yet), so an attach is one nftables transaction: each one costs a listing of every
        set on the host in libnftables, whatever it changes."""
        after = self._ports(shell)
        gone = [p for p in before if p.name not in {q.name for q in after}]
        new = [p for p in after if p.name not in {q.name for q in before}]
        rules = self.rules
        if gone:
            self._run_tolerant(rules.ports_change("delete", self._port_entries(shell, gone)))
        if objects or new:
            self.nft.run(objects + rules.ports_change("add", self._port_entries(shell, new)))
        with Netlink() as host, shell_links(host, shell.netns, self.range.gateway) as links:
            links.set_loopback(shell.ports_open)
            for port in gone:
                links.close(port.name)
            for port in new:
                links.open(port, alias=shell.host_id)

    def set_policy(self, host_id: str, policy: NetworkAccess) -> None:
        """Apply ``policy`` to a running shell, mode changes included, without restarting it."""
        with self._lock:
            shell = self._shell(host_id)
            if policy == shell.policy:
                return
            before = self._ports(shell)
            shell.policy = policy
            rules = self.rules
            self.nft.run(rules.shell_chain(shell.slot, policy) + rules.shell_allow(shell.slot, policy))
            self._converge(shell, before)
            conntrack.forget(self._addresses_of(shell))
            self.ledger.save_shell(shell)

    def allow_resolved(
        self, host_id: str, rule: AllowRule, addresses: Sequence[IPv4Address | IPv6Address], ttl_s: int
    ) -> None:
        """Admit ``addresses`` that host rule ``rule`` just resolved to, for ``ttl_s`` seconds (at
        least 30). The DNS resolver calls this before it answers. IPv6 addresses are ignored (IPv6 is
        not routed), and so is a shell that is gone or whose policy no longer has ``rule``."""
        with self._lock:
            shell = self._shells.get(host_id)
            v4 = [a for a in addresses if isinstance(a, IPv4Address)]
            if shell is None or rule not in shell.policy.rules or not v4:
                return
            static = allow_elements(shell.policy.rules)
            batch = self.rules.resolved(shell.slot, rule, v4, ttl_s, static)
            if batch:
                self.nft.run(batch)

    def detach(self, host_id: str) -> None:
        """Remove everything the shell holds on the host's network side. Idempotent.

        Its rules and set entries go at once (its ports carry nothing from then on); the ports
        themselves and its conntrack entries go in the background (:mod:`.reaper`, :meth:`settle`)."""
        with self._lock:
            shell = self._shells.get(host_id)
            if shell is None:
                return
            self._pending += [(host_id, a) for a in self._drain_shell(shell)]
            self._remove_shell_objects(shell, self._ports(shell))
            self.ledger.drop_shell(host_id)
            del self._shells[host_id]
            self._reaping.add(shell.slot)
            names = [port_name(self.instance, shell.slot, i) for i in range(PORTS_PER_SHELL)]
            self._reaper.submit(shell.slot, names, self._addresses_of(shell))

    def _remove_shell_objects(self, shell: ShellNet, ports: Sequence[VethLink]) -> None:
        rules = self.rules
        batch = rules.ports_change("delete", self._port_entries(shell, ports))
        batch += "".join(rules.drop_objects(name) for name in rules.shell_object_names(shell.slot))
        self._run_tolerant(batch + rules.forget_dropped(shell.slot))

    def _run_tolerant(self, batch: str) -> None:
        """Run a batch of deletions; if some object is already gone (a half-finished attach, a
        crash), delete the rest one by one."""
        try:
            self.nft.run(batch)
        except NftError as exc:
            if not exc.missing:
                raise
            for line in batch.splitlines():
                try:
                    self.nft.run(line)
                except NftError as one:
                    if not one.missing:
                        raise

    # private networks -------------------------------------------------------------------------------
    def network_name(self, net_id: str) -> str | None:
        """The name of private network ``net_id`` if this host has it."""
        net = self._networks.get(net_id)
        return net.name if net is not None else None

    def free_network_cidr(self) -> IPv4Network:
        """A CIDR for a new private network that no network of this instance uses."""
        with self._lock:
            return self.range.free_network(n.cidr for n in self._networks.values())

    def create_network(self, net: PrivateNetwork) -> None:
        with self._lock:
            known = self._networks.get(net.id)
            if known is not None:
                if known.cidr != net.cidr:
                    raise Conflict(f"Private network {net.id} exists with CIDR {known.cidr}, not {net.cidr}.")
                return
            pool = self.range.network_pool
            if not net.cidr.subnet_of(pool):
                raise InvalidRequest(
                    f"A private network's CIDR must lie in this instance's network range {pool}, "
                    f"not {net.cidr}; HostNetwork.free_network_cidr() gives a free one.",
                    {"field": "cidr"},
                )
            for other in self._networks.values():
                if other.cidr.overlaps(net.cidr):
                    raise InvalidRequest(
                        f"CIDR {net.cidr} overlaps private network {other.name!r} ({other.cidr}).",
                        {"field": "cidr"},
                    )
            self.nft.run(self.rules.network_change("add", net.cidr))
            self.ledger.save_network(net)
            self._networks[net.id] = net

    def delete_network(self, net_id: str) -> None:
        """Take every member off the network, then remove it. Idempotent."""
        with self._lock:
            net = self._networks.get(net_id)
            if net is None:
                return
            for shell in list(self._shells.values()):
                if net_id in shell.memberships:
                    self.leave(shell.host_id, net_id)
            self.nft.run(self.rules.network_change("delete", net.cidr))
            self.ledger.drop_network(net_id)
            del self._networks[net_id]

    def join(self, host_id: str, net: PrivateNetwork, hostname: str) -> str:
        """Put a (running) shell on ``net`` as ``hostname``; returns its address there."""
        with self._lock:
            shell = self._shell(host_id)
            if net.id in shell.memberships:
                return str(shell.memberships[net.id].address)
            before = self._ports(shell)
            membership = self._add_membership(shell, net, hostname)
            try:
                self._converge(shell, before)
            except BaseException:
                opened = self._ports(shell)
                del shell.memberships[net.id]
                self._converge(shell, opened)  # closes whatever of the new port exists
                raise
            self.ledger.save_shell(shell)
            return str(membership.address)

    def _add_membership(self, shell: ShellNet, net: PrivateNetwork, hostname: str) -> Membership:
        self.create_network(net)
        taken = net.taken
        net = self._networks[net.id]
        index = lowest_free(
            (m.index for m in shell.memberships.values()),
            1,
            PORTS_PER_SHELL,
            "private network port of this shell",
        )
        used = {
            m.address for s in self._shells.values() for m in s.memberships.values() if m.net_id == net.id
        }
        used |= taken | set(self._overlays.remote(net.id).values())  # held on other nodes
        offset = lowest_free(
            (int(a) - int(net.cidr.network_address) for a in used),
            2,
            net.cidr.num_addresses - 1,
            f"address on private network {net.name!r}",
        )
        membership = Membership(net.id, index, net.cidr[offset], hostname)
        shell.memberships[net.id] = membership
        return membership

    def leave(self, host_id: str, net_id: str) -> None:
        with self._lock:
            shell = self._shells.get(host_id)
            if shell is None or net_id not in shell.memberships:
                return
            before = self._ports(shell)
            membership = shell.memberships.pop(net_id)
            self._converge(shell, before)
            conntrack.forget({membership.address})
            self.ledger.save_shell(shell)

    def peers(self, net_id: str) -> dict[str, IPv4Address]:
        """Host name → address of the members of ``net_id`` whose ports are open, on this node and
        (as the overlay's plan has them) on others."""
        with self._lock:
            return self._overlays.remote(net_id) | self._local_peers(net_id)

    def _local_peers(self, net_id: str) -> Members:
        return {
            s.memberships[net_id].hostname: s.memberships[net_id].address
            for s in self._shells.values()
            if net_id in s.memberships and s.ports_open
        }

    # across nodes -----------------------------------------------------------------------------------
    def overlay_members(self) -> dict[str, Members]:
        """Per private network, the members on this node whose ports are open (for the plans of
        the other nodes, :mod:`.overlay`)."""
        with self._lock:
            found = {net_id: self._local_peers(net_id) for net_id in self._networks}
            return {net_id: members for net_id, members in found.items() if members}

    def set_overlay(self, local: IPv4Address, plan: Plan) -> None:
        """Link this node's members of each network in ``plan`` with the peers it names, from the
        underlay address ``local``; a network that leaves the plan loses its link."""
        with self._lock:
            self._overlays.apply(local, plan, self._networks, self.rules, self.nft)

    def memberships(self, host_id: str) -> list[str]:
        """Ids of the private networks the shell is on (for the DNS resolver's peer answers)."""
        with self._lock:
            shell = self._shells.get(host_id)
            return sorted(shell.memberships) if shell is not None else []

    # for the DNS resolver ---------------------------------------------------------------------------
    def client_of(self, ip: IPv4Address | IPv6Address) -> str | None:
        """The shell that owns source address ``ip`` on an open port, if any."""
        with self._lock:
            for shell in self._shells.values():
                if any(p.address == ip for p in self._ports(shell)):
                    return shell.host_id
            return None

    def netns_of(self, host_id: str) -> str | None:
        """Where the shell's network namespace is bound (for sockets made inside it)."""
        with self._lock:
            shell = self._shells.get(host_id)
            return shell.netns if shell is not None else None

    def gateway_addresses(self) -> list[IPv4Address]:
        """Where the instance's DNS resolver must listen (port 53, UDP and TCP): the one gateway."""
        return [self.range.gateway]

    def policy_of(self, host_id: str) -> NetworkAccess | None:
        with self._lock:
            shell = self._shells.get(host_id)
            return shell.policy if shell is not None else None

    # audit --------------------------------------------------------------------------------------------
    def drain_blocked(self) -> list[tuple[str, BlockedAttempt]]:
        """Refused attempts since the previous drain, one record per shell and destination.

        Only the shells in ``dropped`` (a refused packet within the last ``DROPPED_TIMEOUT_S``) are
        read, so an idle host's drain is one small listing whatever the number of shells; the first
        drain of a run reads every shell (their sets may predate ``dropped``)."""
        with self._lock:
            out, self._pending = self._pending, []
            if self._drained_all:
                slots = self._dropped_slots()
                shells = [s for s in self._shells.values() if s.slot in slots]
            else:
                shells = list(self._shells.values())
            if len(shells) > FEW_DROPPING:  # one listing of every set beats many small ones
                sets = [i for i in self.nft.query(f"list sets table {self.rules.table}") if "set" in i]
                by_slot = counted_by_slot(sets, datetime.now(UTC), BLOCKED_TIMEOUT_S)
                for shell in shells:
                    out += [(shell.host_id, a) for a in self._grow(shell, by_slot.get(shell.slot, []))]
            else:
                for shell in shells:
                    out += [(shell.host_id, a) for a in self._drain_shell(shell)]
            self._drained_all = True
            return out

    def _dropped_slots(self) -> set[int]:
        """The slots in ``dropped`` (elements carry their expiry: ``{"elem": {"val": slot, …}}``)."""
        items = self.nft.query(f"list set {self.rules.table} dropped")
        elements = [e for i in items if "set" in i for e in i["set"].get("elem", [])]
        return {int(e["elem"]["val"]) if isinstance(e, dict) else int(e) for e in elements}

    def _drain_shell(self, shell: ShellNet) -> list[BlockedAttempt]:
        sets: list[dict[str, Any]] = []
        for kind in "bfvg":
            sets += [
                i for i in self.nft.query(f"list set {self.rules.table} {kind}{shell.slot}") if "set" in i
            ]
        by_slot = counted_by_slot(sets, datetime.now(UTC), BLOCKED_TIMEOUT_S)
        return self._grow(shell, by_slot.get(shell.slot, []))

    def _grow(self, shell: ShellNet, counted: list[Any]) -> list[BlockedAttempt]:
        attempts, seen = growth(counted, shell.blocked_seen)
        if seen != shell.blocked_seen:
            shell.blocked_seen = seen
            self.ledger.save_shell(shell)
        return attempts

    # uninstall ----------------------------------------------------------------------------------------
    def _range_in_table(self) -> IPv4Network | None:
        """The range written in the instance's table, for a purge after its run dir was removed."""
        try:
            return _nat_source(self.nft.query(f"list chain {table_name(self.instance)} nat_out"))
        except NftError as exc:
            if exc.missing:
                return None
            raise

    def purge(self) -> None:
        """Remove every object of this instance: ports, networks, the table, the gateway link."""
        with self._lock:
            if self._range is None:
                stored = self.ledger.read_range() or self._range_in_table()
                if stored is None:
                    return
                self._range = InstanceRange(stored)
                self._shells = {s.host_id: s for s in self.ledger.shells()}
                self._networks = {n.id: n for n in self.ledger.networks()}
            for host_id in list(self._shells):
                self.detach(host_id)
            for net_id in list(self._networks):
                self.delete_network(net_id)
        self.settle()
        with self._lock:
            try:
                self.nft.run(self.rules.delete_table())
            except NftError as exc:
                if not exc.missing:
                    raise
            with Netlink() as host:
                for link in host.links():
                    if parse_port_name(self.instance, link.name) is not None:
                        host.delete_link(link.index)
                self._overlays.remove_all(host)
                remove_gateway(host, self.gateway_link, self.range.cidr)
            shutil.rmtree(self.ledger.root, ignore_errors=True)
            self._range = None


class _Unclaimed:
    """Addresses of the instance's range that no running shell holds (``in`` is all it offers)."""

    def __init__(self, cidr: IPv4Network, claimed: set[IPv4Address]) -> None:
        self.cidr, self.claimed = cidr, claimed

    def __contains__(self, address: object) -> bool:
        return address in self.cidr and address not in self.claimed


def _nat_source(items: list[dict[str, Any]]) -> IPv4Network | None:
    """The source network the instance's masquerade rule matches: its range."""
    for item in items:
        for expr in item.get("rule", {}).get("expr", []):
            prefix = expr.get("match", {}).get("right", {})
            if isinstance(prefix, dict) and "prefix" in prefix:
                return IPv4Network(f"{prefix['prefix']['addr']}/{prefix['prefix']['len']}")
    return None


def _slot_of(name: str) -> int | None:
    """The slot of a per-shell object name (``s12``, ``b12`` …), else None."""
    if len(name) > 1 and name[0] in "sdaqpbvfg" and name[1:].isdigit():
        return int(name[1:])
    return None
