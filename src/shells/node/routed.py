"""Several nodes behind the one ``Backend`` per class the control plane holds: every call for a
shell goes to the node its record names (``ShellRecord.node``), a snapshot's calls to the node of the
shell it was taken from (its delete to every node: others may have fetched it for a new shell), and
a shell without a record (a template build's) to the node that made it.

Where a new shell goes is placement's (``control.placement``, by region, class and room); only a
template build's shell, which has no record, goes to the next node, in turn, that offers the class."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from ..domain.errors import FeatureUnavailable, ShellsError, Unavailable
from ..domain.execution import ExecEvent, ExecSpec, FileChange, FileEntry, KeptProcess, WindowSize
from ..domain.isolation import Runtime
from ..domain.network import AllowRule, BlockedAttempt, NetworkAccess, PrivateNetwork
from ..domain.runtimes import RuntimeOffer
from ..domain.samples import ResourceUsage
from ..domain.templates import BuildProgress, TemplateMeta
from ..domain.terminal import TerminalIO, TerminalSpec
from ..runtime.backend import Backend, HostInventory, ShellSpec
from ..runtime.network.addressing import InstanceRange
from ..runtime.network.contract import InstanceNetwork, NodeOverlay
from ..runtime.network.dataplane import ShellAddresses
from ..runtime.network.overlay import Members, Plan
from . import Node
from .carrier import Carrier, RoutedCarrier
from .remote import RemoteNetwork

Lookup = Callable[[str], str | None]
log = logging.getLogger(__name__)


class Routes:
    """Where shells and snapshots are, from the record (the server wires ``node_of`` and
    ``snapshot_node`` to the store; ``forget`` drops what it remembers of a shell that moved)."""

    def __init__(
        self, node_of: Lookup, snapshot_node: Lookup, forget: Callable[[str], None] | None = None
    ) -> None:
        self.node_of = node_of
        self.snapshot_node = snapshot_node
        self.forget = forget or (lambda host_id: None)
        self.unrecorded: dict[str, str] = {}
        """Shells made without a record (template builds), by host id: their node."""
        self.elsewhere: Callable[[PrivateNetwork, str], PrivateNetwork] | None = None
        """A network with the addresses its members hold off a given node (``RoutedNetwork``)."""


class RoutedBackend:
    def __init__(self, runtime: Runtime, nodes: Mapping[str, Backend], routes: Routes) -> None:
        if not nodes:
            raise FeatureUnavailable(f"No node offers the {runtime} class.")
        self.runtime = runtime
        self.nodes = dict(nodes)
        self.routes = routes
        first = self._first = next(iter(self.nodes.values()))
        self.capabilities = first.capabilities
        self.network_modes = first.network_modes
        self.port_address = first.port_address
        self._turn = itertools.count()
        self.usable: Callable[[str], bool] = lambda name: True
        """Whether a node takes new shells now (``Fleet.usable``)."""

    def place(self) -> str:
        names = [n for n in sorted(self.nodes) if self.usable(n)]
        if not names:
            raise Unavailable(f"No node that runs {self.runtime} shells is up now; retry shortly.")
        return names[next(self._turn) % len(names)]

    def _node_of(self, host_id: str) -> str:
        name = self.routes.node_of(host_id) or self.routes.unrecorded.get(host_id)
        if name is None:
            name = self.place()
            self.routes.unrecorded[host_id] = name
        return name

    def _at(self, host_id: str) -> Backend:
        name = self._node_of(host_id)
        try:
            return self.nodes[name]
        except KeyError:
            raise Unavailable(
                f"Shell {host_id} is on node {name!r}, which this control plane does not reach."
            ) from None

    def _everywhere(self) -> list[Backend]:
        return list(self.nodes.values())

    def _any(self) -> Backend:
        """A node's backend for what every node answers alike (the first one's once none is left)."""
        return next(iter(self.nodes.values()), self._first)

    # facts: the first node's (every node of a cluster runs the same release) ------------------------
    async def prepare(self) -> None:
        await asyncio.gather(*(b.prepare() for b in self._everywhere()))

    def details(self) -> dict[str, str]:
        return self._any().details()

    def offers(self) -> list[RuntimeOffer]:
        return self._any().offers()

    def templates(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for backend in self._everywhere():
            merged |= backend.templates()
        return merged

    def template_meta(self, name: str) -> TemplateMeta | None:
        return next((m for b in self._everywhere() if (m := b.template_meta(name)) is not None), None)

    def list_templates(self) -> list[TemplateMeta]:
        return list({m.name: m for b in self._everywhere() for m in b.list_templates()}.values())

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        metas = await asyncio.gather(
            *(b.ensure_template(name, progress, allow_build=allow_build) for b in self._everywhere())
        )
        return metas[0]

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        return await self._at(host_id).capture_template(host_id, meta, include_workspace)

    async def delete_template(self, name: str) -> None:
        await asyncio.gather(*(b.delete_template(name) for b in self._everywhere()))

    async def export_ext4(self, name: str, dest: Path) -> None:
        await self._any().export_ext4(name, dest)

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        return await self._of_snapshot(snapshot_id).export_snapshot(snapshot_id, dest)

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        return await self._any().export_template(name, dest)

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        await asyncio.gather(*(b.import_template(meta, parts) for b in self._everywhere()))

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        await self._of_snapshot(snapshot_id).import_snapshot(snapshot_id, parts)

    def workspace_dir(self, host_id: str) -> Path:
        return self._at(host_id).workspace_dir(host_id)

    def _of_snapshot(self, snapshot_id: str) -> Backend:
        name = self.routes.snapshot_node(snapshot_id)
        return self.nodes[name] if name in self.nodes else self._any()

    async def inventory(self) -> HostInventory:
        found = await asyncio.gather(*(b.inventory() for b in self._everywhere()))
        return HostInventory(
            running=set().union(*(f.running for f in found)),
            paused=set().union(*(f.paused for f in found)),
            stored=set().union(*(f.stored for f in found)),
            snapshots=set().union(*(f.snapshots for f in found)),
        )

    async def _placed(self, spec: ShellSpec, node: str | None = None) -> ShellSpec:
        """``spec`` with each of its private networks naming the addresses held on other nodes, so
        its node hands out none of them."""
        elsewhere = self.routes.elsewhere
        if not spec.networks or elsewhere is None:
            return spec
        at = node or self._node_of(spec.host_id)
        nets = await asyncio.to_thread(lambda: tuple(elsewhere(n, at) for n in spec.networks))
        return replace(spec, networks=nets)

    # one shell: its node ------------------------------------------------------------------------------
    async def create(self, spec: ShellSpec) -> None:
        await self._at(spec.host_id).create(await self._placed(spec))

    async def start(self, spec: ShellSpec) -> None:
        await self._at(spec.host_id).start(await self._placed(spec))

    async def stop(self, host_id: str) -> None:
        await self._at(host_id).stop(host_id)

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        await self._at(host_id).set_network(host_id, policy)

    async def destroy(self, host_id: str) -> None:
        await self._at(host_id).destroy(host_id)
        self.routes.unrecorded.pop(host_id, None)

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        await self._at(spec.host_id).reset(await self._placed(spec), wipe_workspace=wipe_workspace)

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        await self._at(host_id).snapshot(host_id, snapshot_id)

    async def pause(self, host_id: str) -> None:
        await self._at(host_id).pause(host_id)

    async def resume(self, spec: ShellSpec) -> None:
        await self._at(spec.host_id).resume(await self._placed(spec))

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        node = self._node_of(host_id)
        placed = [await self._placed(child, node) for child in children]
        await self._at(host_id).fork(host_id, placed)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """On every node: the one that took it and each that fetched it for a new shell."""
        await asyncio.gather(*(b.delete_snapshot(snapshot_id) for b in self._everywhere()))

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        return await self._at(host_id).logs(host_id, max_bytes)

    def usage(self, host_id: str) -> ResourceUsage:
        return self._at(host_id).usage(host_id)

    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        return self._at(host_id).exec(host_id, spec)

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return self._at(host_id).terminal(host_id, spec)

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._at(host_id).read_file(host_id, path, max_bytes)

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        return await self._at(host_id).write_file(host_id, path, chunks, mode, owner, xattrs)

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return await self._at(host_id).list_dir(host_id, path, xattr_prefix)

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return await self._at(host_id).stat(host_id, path, xattr_prefix)

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        await self._at(host_id).remove(host_id, path, recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        await self._at(host_id).mkdir(host_id, path, owner)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        return await self._at(host_id).rename(host_id, source, destination)

    def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        return self._at(host_id).watch(host_id, path, recursive)

    def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        return self._at(host_id).attach(host_id, pid, more)

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return await self._at(host_id).processes(host_id)

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        await self._at(host_id).signal(host_id, pid, signum)


class RoutedNetwork:
    """The instance network over several nodes: a shell's calls go to its node, a private network
    is made and removed on every node, the drop counters are read from all. Every node of a
    cluster runs with the same ``SHELLS_NETWORK_CIDR``, so one range names the instance's networks.

    Members of one network on different nodes are linked by the nodes' overlay
    (``runtime.network.overlay``): ``link_overlays`` asks every node which members it holds and
    sends each the plan of its peers; a member's address is chosen on its node among those no
    other node holds (``elsewhere``)."""

    def __init__(
        self,
        nodes: Mapping[str, InstanceNetwork],
        routes: Routes,
        overlays: Mapping[str, tuple[IPv4Address, NodeOverlay]] | None = None,
    ) -> None:
        self.nodes = dict(nodes)
        self.routes = routes
        self._first = next(iter(self.nodes.values()))
        self.overlays = dict(overlays or {})
        """Node name → its underlay address and overlay calls (the nodes that can be linked)."""
        self._members: dict[str, dict[str, Members]] = {}
        """Each node's members as it last answered (kept for a node that does not answer)."""
        self.linked: Callable[[str], bool] = lambda name: True
        """Whether a node takes part in the plans (a cluster's ``control.node_registry``: alive and
        ready in the record). One that does not, a node declared gone, say, is neither asked nor
        sent a plan, and its members, last reported or not, leave every other node's plan."""

    def _name_of(self, host_id: str) -> str:
        return self.routes.node_of(host_id) or self.routes.unrecorded.get(host_id) or ""

    def _any(self) -> InstanceNetwork:
        return next(iter(self.nodes.values()), self._first)

    def _at(self, host_id: str) -> InstanceNetwork:
        return self.nodes.get(self._name_of(host_id), self._any())

    @property
    def range(self) -> InstanceRange:
        return self._any().range

    def addresses(self, host_id: str) -> ShellAddresses:
        return self._at(host_id).addresses(host_id)

    def gateway_addresses(self) -> list[IPv4Address]:
        return self._any().gateway_addresses()

    def create_network(self, net: PrivateNetwork) -> None:
        for network in self.nodes.values():
            network.create_network(net)

    def delete_network(self, net_id: str) -> None:
        for network in self.nodes.values():
            network.delete_network(net_id)

    def join(self, host_id: str, net: PrivateNetwork, hostname: str) -> str:
        return self._at(host_id).join(host_id, self.elsewhere(net, self._name_of(host_id)), hostname)

    def elsewhere(self, net: PrivateNetwork, node: str) -> PrivateNetwork:
        """``net`` naming the addresses its members hold on nodes other than ``node`` (each node's
        own members: a peer's plan may still name this node's members that just left). A node
        that does not answer counts with its members as it last reported them; one not ``linked``
        (gone) holds none."""
        others = {name: n for name, (_, n) in self.overlays.items() if name != node and self.linked(name)}
        if not others:
            return net
        taken: set[IPv4Address] = set()
        for name, other in others.items():
            try:
                members = other.overlay_members()
            except ShellsError:
                members = self._members.get(name, {})
            taken |= set(members.get(net.id, {}).values())
        return replace(net, taken=frozenset(taken))

    def link_overlays(self) -> None:
        """Send every node its overlay plan: for each network it has members of, the other nodes
        with members too, and those members. A node that does not answer keeps its last plan, and
        the others keep routing to its members as it last reported them."""
        if len(self.overlays) < 2:
            return
        linked = {name: found for name, found in self.overlays.items() if self.linked(name)}
        for name in set(self._members) - set(linked):  # gone: its members are lost, not routed to
            del self._members[name]
        for name, (_, node) in linked.items():
            try:
                self._members[name] = node.overlay_members()
            except ShellsError as exc:
                log.warning("node %s did not report its private network members: %s", name, exc)
        for name, (local, node) in linked.items():
            plan: Plan = {}
            for net_id in self._members.get(name, {}):
                peers = {
                    linked[other][0]: members[net_id]
                    for other, members in self._members.items()
                    if other != name and other in linked and net_id in members
                }
                if peers:
                    plan[net_id] = peers
            try:
                node.set_overlay(local, plan)
            except ShellsError as exc:
                log.warning("node %s did not take its overlay plan: %s", name, exc)

    def leave(self, host_id: str, net_id: str) -> None:
        self._at(host_id).leave(host_id, net_id)

    def peers(self, net_id: str) -> dict[str, IPv4Address]:
        found: dict[str, IPv4Address] = {}
        for network in self.nodes.values():
            found |= network.peers(net_id)
        return found

    def memberships(self, host_id: str) -> list[str]:
        return self._at(host_id).memberships(host_id)

    def client_of(self, ip: IPv4Address | IPv6Address) -> str | None:
        return next((c for n in self.nodes.values() if (c := n.client_of(ip)) is not None), None)

    def policy_of(self, host_id: str) -> NetworkAccess | None:
        return self._at(host_id).policy_of(host_id)

    def netns_of(self, host_id: str) -> str | None:
        return self._at(host_id).netns_of(host_id)

    def drain_blocked(self) -> list[tuple[str, BlockedAttempt]]:
        return [attempt for network in self.nodes.values() for attempt in network.drain_blocked()]

    def allow_resolved(
        self, host_id: str, rule: AllowRule, addresses: Sequence[IPv4Address | IPv6Address], ttl_s: int
    ) -> None:
        self._at(host_id).allow_resolved(host_id, rule, addresses, ttl_s)


class Fleet:
    """A control role's nodes by name, behind the routed backends and network, changed while it runs:
    a node that joins is ``add``ed (its calls reach it from then on), one that leaves is ``remove``d
    and its connections closed. Every call for a shell follows the record; moving a shell between
    nodes (``control.relocate``) calls a given node directly (``backend``, ``carrier``). A node that
    joins with a class no node offered before brings that class in (``on_class`` tells the
    control plane)."""

    def __init__(self, nodes: Sequence[Node], routes: Routes) -> None:
        by_class: dict[Runtime, dict[str, Backend]] = {}
        for node in nodes:
            for backend in node.backends:
                by_class.setdefault(backend.runtime, {})[node.name] = backend
        self.routes = routes
        self.backends = {r: self._routed(r, found) for r, found in by_class.items()}
        overlays = {n.name: found for n in nodes if (found := _overlay_of(n)) is not None}
        self.network = RoutedNetwork({n.name: n.network for n in nodes}, routes, overlays)
        routes.elsewhere = self.network.elsewhere
        self.members: dict[str, Node] = {n.name: n for n in nodes}
        self.usable: Callable[[str], bool] = lambda name: True
        """Whether a node takes shells now (a cluster's ``control.node_registry``: alive and ready)."""
        carriers = {n.name: n.carrier for n in nodes if n.carrier is not None}
        self.carriers = RoutedCarrier(carriers, routes.snapshot_node) if carriers else None
        self.node = Node(
            "+".join(self.members), list[Backend](self.backends.values()), self.network, local=False,
            close=self.close, carrier=self.carriers, fleet=self,
        )  # fmt: skip
        self.on_class: Callable[[Backend], object] = lambda routed: None
        """Called with the routed backend of a class a joining node brought first."""

    def _routed(self, runtime: Runtime, nodes: Mapping[str, Backend]) -> RoutedBackend:
        routed = RoutedBackend(runtime, nodes, self.routes)
        routed.usable = lambda name: self.usable(name)  # noqa: PLW0108 (late: the registry sets it)
        return routed

    def names(self, runtime: Runtime) -> list[str]:
        """The usable nodes that run the class, by name."""
        return sorted(
            n.name
            for n in self.members.values()
            if self.usable(n.name) and any(b.runtime is runtime for b in n.backends)
        )

    def backend(self, node: str, runtime: Runtime) -> Backend:
        member = self.members.get(node)
        found = next((b for b in member.backends if b.runtime is runtime), None) if member else None
        if found is None:
            raise Unavailable(
                f"Node {node!r} is not one this control plane reaches with the {runtime} class."
            )
        return found

    def carrier(self, node: str) -> Carrier:
        member = self.members.get(node)
        if member is None or member.carrier is None:
            raise Unavailable(f"Node {node!r} is not one this control plane reaches.")
        return member.carrier

    def add(self, node: Node) -> None:
        self.members[node.name] = node
        for backend in node.backends:
            if (routed := self.backends.get(backend.runtime)) is not None:
                routed.nodes[node.name] = backend
                continue
            routed = self.backends[backend.runtime] = self._routed(backend.runtime, {node.name: backend})
            self.node.backends.append(routed)
            self.on_class(routed)
        self.network.nodes[node.name] = node.network
        if (found := _overlay_of(node)) is not None:
            self.network.overlays[node.name] = found
        if self.carriers is not None and node.carrier is not None:
            self.carriers.carriers[node.name] = node.carrier

    async def remove(self, name: str) -> None:
        node = self.members.pop(name, None)
        for routed in self.backends.values():
            routed.nodes.pop(name, None)
        self.network.nodes.pop(name, None)
        self.network.overlays.pop(name, None)
        if self.carriers is not None:
            self.carriers.carriers.pop(name, None)
        if node is not None:
            await node.close()

    async def close(self) -> None:
        for name in list(self.members):
            await self.remove(name)


def _overlay_of(node: Node) -> tuple[IPv4Address, NodeOverlay] | None:
    """A remote node's underlay address and overlay calls, when it can be linked to others."""
    network = node.network
    if isinstance(network, RemoteNetwork) and network.underlay is not None:
        return network.underlay, network
    return None
