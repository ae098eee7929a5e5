"""Use cases of the network: a shell's policy (changed live), private networks, exposed ports, and
the blocked-connection log.

The host side is one ``HostNetwork`` per instance (nftables, bridges, veths); this layer keeps the
records, checks who may do what, and feeds the drops the host counted into the store."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import IPv4Network
from typing import Any

import anyio

from ..domain import access
from ..domain.errors import (
    InvalidRequest,
    InvalidState,
    NetworkExists,
    NetworkInUse,
    NetworkNotFound,
    PortNotExposed,
    ShellsError,
)
from ..domain.ids import new_id
from ..domain.network import BlockedAttempt, NetworkMode
from ..domain.networking import (
    ExposedPort,
    NetworkRecord,
    check_network_name,
    check_port,
)
from ..domain.principal import Principal, Scope
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..node.remote import RemoteNetwork
from ..runtime.network.contract import InstanceNetwork, SpansNodes
from ..runtime.network.dns_upstream import configured_upstreams
from ..runtime.network.ingress import Exposure, IngressProxy, new_port_token
from ..runtime.network.resolver import DnsResolver
from ..runtime.network.shell_dns import RefusalLog, ShellDns
from ..store.networking import NetworkingStore
from .auth import authorize, require
from .context import ControlContext
from .node_ports import PORTS_POLL_S, NodePortTables
from .requests import SEALED_HAS_NO_NETWORK, parse_network_policy

log = logging.getLogger(__name__)

BLOCKED_POLL_S = 1.0
"""How often the host's drop counters are read into the store (the kernel aggregates meanwhile)."""
OVERLAY_POLL_S = 1.0
"""How often the nodes of a cluster are told which peers carry members of their private networks
(a member that joins on one node is reachable from the others within about this long)."""


class Networking:
    def __init__(self, ctx: ControlContext, host: InstanceNetwork) -> None:
        self.ctx = ctx
        self.host = host
        self.records = NetworkingStore(ctx.store)
        self.refusals = RefusalLog()
        """Refused DNS questions since the last collection."""
        self._resolver: DnsResolver | None = None
        self._proxy: IngressProxy | None = None
        self.on_port_use: Callable[[str], None] = lambda shell_id: None
        """Called with a shell's id for every request the ingress proxy routes to it (activity)."""
        self.on_wake: Callable[[str, str], Awaitable[object]] = _no_wake
        """Resumes a paused shell with ``auto_resume`` for a request to its port (id, why)."""
        self.node_ports = NodePortTables(
            ctx,
            self.records,
            self._exposure,
            lambda s: self.on_port_use(s),  # noqa: PLW0108 (late: the service sets these after)
            lambda s, why: self.on_wake(s, why),  # noqa: PLW0108
        )
        """The tables of exposed ports sent to a cluster's nodes, and what their proxies saw."""

    # one shell's network ----------------------------------------------------------------------------
    def describe(self, principal: Principal, shell_id: str) -> dict[str, Any]:
        return self._describe(authorize(self.ctx.store, principal, shell_id, access.READ))

    def _describe(self, shell: ShellRecord) -> dict[str, Any]:
        addresses: dict[str, Any] = {}
        nets = self.records.memberships(shell.id)
        if shell.state is ShellState.RUNNING:
            with contextlib.suppress(ShellsError):
                found = self.host.addresses(shell.id)
                addresses = {
                    "ipv4": str(found.ipv4) if found.ipv4 else None,
                    "gateway": str(found.gateway) if found.ipv4 else None,
                    "networks": {n.name: str(found.networks[n.id]) for n in nets if n.id in found.networks},
                }
        return {
            "policy": shell.network.to_dict(),
            "networks": [n.name for n in nets],
            "addresses": addresses,
            "blocked": [b.to_dict() for b in self.records.blocked(shell.id)],
        }

    async def set_policy(
        self, principal: Principal, shell_id: str, body: Mapping[str, Any], door: str
    ) -> dict[str, Any]:
        """Change a shell's mode and allow list; a running shell gets it at once, without a restart."""
        require(principal, access.NETWORK.scope)
        policy = parse_network_policy(dict(body))
        shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
        async with self.ctx.locks[shell.id]:
            shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
            if shell.state is ShellState.RUNNING:
                await self.ctx.backend(shell.runtime).set_network(shell.id, policy)
            before = shell.network
            shell.network = policy
            shell.updated_at = datetime.now(UTC)
            details = {"from": before.to_dict(), "to": policy.to_dict()}
            self.ctx.store.save_shell(
                shell,
                self.ctx.draft(
                    principal, shell, door=door, kind="network", action="set_policy", details=details
                ),
            )
        return self._describe(shell)

    # private networks -------------------------------------------------------------------------------
    def list_networks(self, principal: Principal) -> list[NetworkRecord]:
        require(principal, Scope.READ)
        return [self._live(n) for n in self.records.list_networks(principal.tenant)]

    def get_network(self, principal: Principal, name: str) -> NetworkRecord:
        require(principal, Scope.READ)
        return self._network(principal, name)

    def _network(self, principal: Principal, name: str) -> NetworkRecord:
        rec = self.records.get_network(principal.tenant, name)
        if rec is None:
            raise NetworkNotFound(f"Private network '{name}' does not exist.", {"network": name})
        return self._live(rec)

    def _live(self, rec: NetworkRecord) -> NetworkRecord:
        """The record with each running member's address as the host has it now."""
        members = dict(rec.members)
        for shell_id, recorded in rec.members.items():
            with contextlib.suppress(ShellsError):
                live = self.host.addresses(shell_id).networks.get(rec.id)
                members[shell_id] = str(live) if live is not None else recorded
        return replace(rec, members=members)

    def create_network(self, principal: Principal, body: Mapping[str, Any], door: str) -> NetworkRecord:
        require(principal, Scope.CREATE)
        unknown = sorted(set(body) - {"name"})
        if unknown:
            raise InvalidRequest(
                f"Unknown field(s) {', '.join(unknown)}. Known fields: name.", {"fields": unknown}
            )
        name = check_network_name(body.get("name"))
        if self.records.get_network(principal.tenant, name) is not None:
            raise NetworkExists(f"You already have a private network named '{name}'.", {"network": name})
        cidr = self.host.range.free_network(IPv4Network(c) for c in self.records.used_cidrs())
        rec = NetworkRecord(new_id("net"), principal.tenant, name, str(cidr), datetime.now(UTC))
        self.host.create_network(rec.private())
        try:
            self.records.add_network(
                rec,
                self.ctx.draft(
                    principal,
                    None,
                    door=door,
                    kind="network",
                    action="create_network",
                    details=rec.to_public(),
                ),
            )
        except BaseException:
            self.host.delete_network(rec.id)
            raise
        return rec

    def delete_network(self, principal: Principal, name: str, door: str) -> None:
        require(principal, Scope.DESTROY)
        rec = self._network(principal, name)
        if rec.members:
            raise NetworkInUse(
                f"Private network '{name}' still has {len(rec.members)} shell(s) attached "
                f"(e.g. {min(rec.members)}); detach or delete them first.",
                {"network": name, "shells": sorted(rec.members)},
            )
        self.host.delete_network(rec.id)
        self.records.delete_network(
            rec.id,
            self.ctx.draft(
                principal,
                None,
                door=door,
                kind="network",
                action="delete_network",
                details={"id": rec.id, "name": rec.name},
            ),
        )

    async def attach(self, principal: Principal, name: str, shell_id: str, door: str) -> NetworkRecord:
        """Put a shell on a private network (live if it runs, at its next start otherwise)."""
        require(principal, access.NETWORK.scope)
        rec = self._network(principal, name)
        shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
        if shell.id in rec.members:
            return rec
        if shell.network.mode is NetworkMode.SEALED:
            raise InvalidState(SEALED_HAS_NO_NETWORK, {"mode": shell.network.mode.value})
        async with self.ctx.locks[shell.id]:
            address = ""
            if shell.state is ShellState.RUNNING:
                address = await anyio.to_thread.run_sync(self.host.join, shell.id, rec.private(), shell.name)
            self.record_member(principal, rec, shell, address, door)
        return self._network(principal, name)

    def record_member(
        self, principal: Principal, rec: NetworkRecord, shell: ShellRecord, address: str, door: str
    ) -> None:
        """Write down (with its audit event) that ``shell`` is on ``rec``; ``address`` may be unknown yet."""
        details = {"network": rec.name, "address": address}
        draft = self.ctx.draft(principal, shell, door=door, kind="network", action="attach", details=details)
        self.records.add_member(rec.id, shell.id, address, draft)

    async def detach(self, principal: Principal, name: str, shell_id: str, door: str) -> None:
        require(principal, access.NETWORK.scope)
        rec = self._network(principal, name)
        shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
        if shell.id not in rec.members:
            raise NetworkNotFound(
                f"Shell '{shell_id}' is not attached to private network '{name}'.",
                {"network": name, "shell": shell_id},
            )
        async with self.ctx.locks[shell.id]:
            await anyio.to_thread.run_sync(self.host.leave, shell.id, rec.id)
            self.records.remove_member(
                rec.id,
                shell.id,
                self.ctx.draft(
                    principal,
                    shell,
                    door=door,
                    kind="network",
                    action="detach",
                    details={"network": rec.name},
                ),
            )

    # exposed ports ----------------------------------------------------------------------------------
    def url(self, shell_id: str, port: int, node: str = "") -> str:
        """Where the port answers: this process's proxy, or the ingress proxy of the remote node
        holding the shell (by path: the node's address is all a client needs)."""
        at = self._node_ingress(node)
        if at:
            return f"http://{at}/{shell_id}/{port}/"
        s = self.ctx.settings
        return f"http://{port}-{shell_id}.{s.ingress_domain}:{self.ingress_port}/"

    def _node_ingress(self, node: str) -> str:
        """``host:port`` of a remote node's ingress proxy; empty in this process or for a node this
        control plane does not reach."""
        fleet = self.ctx.fleet
        member = fleet.members.get(node) if fleet is not None and node else None
        network = member.network if member is not None else None
        return network.ingress if isinstance(network, RemoteNetwork) else ""

    @property
    def ingress_port(self) -> int:
        """The port the ingress proxy listens on (the setting, or the one it was given when unset)."""
        if self._proxy is not None:
            return self._proxy.port
        return self.ctx.settings.ingress_port or 0

    def expose(
        self, principal: Principal, shell_id: str, body: Mapping[str, Any], door: str
    ) -> dict[str, Any]:
        require(principal, access.NETWORK.scope)
        unknown = sorted(set(body) - {"port", "public"})
        if unknown:
            raise InvalidRequest(
                f"Unknown field(s) {', '.join(unknown)}. Known fields: port, public.", {"fields": unknown}
            )
        port = check_port(body.get("port"))
        public = body.get("public", False)
        if not isinstance(public, bool):
            raise InvalidRequest("'public' must be true or false.", {"field": "public"})
        shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
        if shell.network.mode is NetworkMode.SEALED:
            raise InvalidState(
                "A sealed shell has no network at all, not even loopback; switch it to 'localhost' or "
                "'internet' first (PUT /v1/shells/{id}/network) to expose a port.",
                {"mode": shell.network.mode.value},
            )
        token, token_hash = (None, None) if public else new_port_token()
        rec = ExposedPort(shell.id, shell.tenant, port, public, token_hash, datetime.now(UTC))
        self.records.add_port(
            rec,
            self.ctx.draft(
                principal,
                shell,
                door=door,
                kind="network",
                action="expose_port",
                details={"port": port, "public": public},
            ),
        )
        return rec.to_public(self.url(shell.id, port, shell.node), token)

    def ports(self, principal: Principal, shell_id: str) -> list[dict[str, Any]]:
        shell = authorize(self.ctx.store, principal, shell_id, access.READ)
        found = self.records.list_ports(shell.id)
        return [p.to_public(self.url(shell.id, p.port, shell.node)) for p in found]

    def close_port(self, principal: Principal, shell_id: str, port: int, door: str) -> None:
        shell = authorize(self.ctx.store, principal, shell_id, access.NETWORK)
        draft = self.ctx.draft(
            principal, shell, door=door, kind="network", action="close_port", details={"port": port}
        )
        if not self.records.remove_port(shell.id, port, draft):
            raise PortNotExposed(f"Port {port} of shell '{shell_id}' is not exposed.", {"port": port})

    def lookup(self, shell_id: str, port: int) -> Exposure | None:
        """The ingress proxy's view of one exposed port (it answers 404 for None, 409 for a shell
        that is not running)."""
        rec = self.records.get_port(shell_id, port)
        shell = self.ctx.store.get_shell(shell_id) if rec is not None else None
        exposure = self._exposure(rec, shell) if rec is not None and shell is not None else None
        if exposure is not None and exposure.not_running is None:
            self.on_port_use(shell_id)
        return exposure

    def _exposure(self, rec: ExposedPort, shell: ShellRecord) -> Exposure | None:
        backend = self.ctx.backends.get(shell.runtime)
        if backend is None:
            return None
        running = shell.state is ShellState.RUNNING
        return Exposure(
            netns=str(self.ctx.settings.run_dir / "netns" / shell.id),
            address=backend.port_address,
            public=rec.public,
            token_hash=rec.token_hash,
            not_running=None if running else shell.state.value,
            wakes=shell.state is ShellState.PAUSED and shell.auto_resume,
        )

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        """Wake on request: resume the shell (the caller waits), then its port as it is now."""
        await self.on_wake(shell_id, f"a request to port {port}")
        return self.lookup(shell_id, port)

    # the blocked log ----------------------------------------------------------------------------------
    async def collect_blocked(self) -> int:
        """Move what the host counted since the last call into the store; returns how many records."""
        drained = await anyio.to_thread.run_sync(self.host.drain_blocked)
        drained += self.refusals.drain()
        by_shell: defaultdict[str, list[BlockedAttempt]] = defaultdict(list)
        for host_id, attempt in drained:
            by_shell[host_id].append(attempt)
        for host_id, attempts in by_shell.items():
            shell = self.ctx.store.get_shell(host_id)
            if shell is None:
                continue
            template = self.ctx.draft(
                None, shell, door="host", kind="network", action="blocked", outcome="dropped"
            )
            self.records.record_blocked(shell.id, attempts, template)
        return len(drained)

    async def start(self, *, dataplane: bool = True) -> None:
        """Serve DNS on the shells' gateway, the ingress proxy, and read the drop counters (only the
        last when the network is a remote node's, which serves the first two itself, the proxy from
        the table of ports ``node_ports`` sends it)."""
        settings = self.ctx.settings
        self.ctx.background.every("reading the drop counters", BLOCKED_POLL_S, self.collect_blocked)
        spanning = self.host
        if isinstance(spanning, SpansNodes):
            self.ctx.background.every(
                "linking private networks across nodes",
                OVERLAY_POLL_S,
                lambda: anyio.to_thread.run_sync(spanning.link_overlays),
                singleton=True,
            )
        if self.ctx.fleet is not None:
            self.ctx.moved.append(self.node_ports.changed)
            self.ctx.background.every(
                "sending exposed ports to nodes",
                PORTS_POLL_S,
                self.node_ports.exchange,
                singleton=True,
            )
            self.ctx.background.every(
                "waiting for wakes on nodes", PORTS_POLL_S, self.node_ports.watch, singleton=True
            )
        if not dataplane:
            return
        self._resolver = DnsResolver(
            ShellDns(self.host, self.records.network_name, self.refusals),
            configured_upstreams(settings.dns_upstreams),
        )
        for address in self.host.gateway_addresses():
            await self._resolver.listen(address)
        self._proxy = IngressProxy(self, settings.ingress_domain)
        await self._proxy.start(settings.ingress_host, settings.ingress_port or 0)

    async def stop(self) -> None:
        if self._proxy is not None:
            await self._proxy.close()
        if self._resolver is not None:
            await self._resolver.close()
        self._proxy = self._resolver = None


async def _no_wake(shell_id: str, why: str) -> None:
    return None
