"""A node agent seen from the control plane: the same ``Backend`` and ``InstanceNetwork`` contracts,
each call sent to the agent (``node.client``).

The contracts' synchronous parts are answered without a round trip where they are facts about the
node that only the node's own calls change: a class's details, offers and templates are fetched when
the node is connected and again after every call that changes templates; a shell's resource usage
is the node's newest reading, fetched for every shell asked about at most every
``USAGE_REFRESH_S`` (the sampler asks every few seconds, so a sample is at most one period old).
``InstanceNetwork`` calls are blocking round trips: the use cases already run the costly ones
(join, leave, drain) in worker threads, and the DNS resolver, ingress and egress proxies that asked
the rest per packet or connection run on the node itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from ..domain.capabilities import Capability
from ..domain.errors import ActionNotSupported, RuntimeFailure, ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecSpec, FileChange, FileEntry, KeptProcess, WindowSize
from ..domain.isolation import Runtime
from ..domain.network import AllowRule, BlockedAttempt, NetworkAccess, NetworkMode, PrivateNetwork
from ..domain.nodes import NodeOffer
from ..domain.runtimes import RuntimeOffer
from ..domain.samples import ResourceUsage
from ..domain.secrets import Brokered
from ..domain.templates import BuildProgress, TemplateMeta
from ..domain.terminal import TerminalIO, TerminalSpec
from ..runtime.backend import Backend, HostInventory, ShellSpec
from ..runtime.network.addressing import InstanceRange
from ..runtime.network.dataplane import ShellAddresses
from ..runtime.network.overlay import Members, Plan
from . import Node
from .carrier import RemoteCarrier
from .client import Duplex, NodeClient
from .egress import SecretUse
from .ingress import PortEntry, PortsReport
from .volume_copies import RemoteVolumes
from .wire import Signer

USAGE_REFRESH_S = 2.0
UNKNOWN_USAGE = ResourceUsage(None, None, None)


def connect_node(url: str, signer: Signer) -> Node:
    """The node agent at ``url`` as a ``Node`` (asks it once what it offers; Unavailable if it does
    not answer or does not authenticate)."""
    return node_over(NodeClient(url, signer))


def node_over(client: NodeClient) -> Node:
    """The node agent ``client`` calls, as a ``Node`` (``connect_node``)."""
    hello = client.call_blocking("node", "hello")
    backends: list[Backend] = [RemoteBackend(client, offer) for offer in hello["backends"]]

    def offer() -> NodeOffer | None:
        found = client.call_blocking("node", "offer")
        return replace(found, classes=frozenset(found.classes)) if isinstance(found, NodeOffer) else None

    volumes = None if hello.get("volumes") is None else RemoteVolumes(client, Path(str(hello["volumes"])))
    return Node(
        str(hello["name"]),
        backends,
        RemoteNetwork(client, hello),
        volumes,
        volume_carrier=volumes,
        local=False,
        close=client.aclose,
        carrier=RemoteCarrier(client),
        offer=offer,
    )


_DURABLE_ON_NODE = (
    "A node moves its snapshots and templates to and from the object store itself (its carrier, "
    "node.carrier); their files never cross the node RPC."
)


class RemoteBackend:
    def __init__(self, client: NodeClient, offer: Mapping[str, Any]) -> None:
        self.client = client
        self.runtime: Runtime = offer["runtime"]
        self.target = self.runtime.value
        self.capabilities: frozenset[Capability] = frozenset(offer["capabilities"])
        self.network_modes: frozenset[NetworkMode] = frozenset(offer["network_modes"])
        self.port_address: str = offer["port_address"]
        self._offer = dict(offer)
        self._usage: dict[str, ResourceUsage] = {}
        self._asked: set[str] = set()
        self._usage_at = 0.0
        self._usage_task: asyncio.Task[None] | None = None

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self.client.call(self.target, method, *args, **kwargs)

    async def _refresh(self) -> None:
        hello = await self.client.call("node", "hello")
        for offer in hello["backends"]:
            if offer["runtime"] is self.runtime:
                self._offer = dict(offer)

    # facts of the node ------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """The node prepared its host when it started; this fetches what it offers now."""
        await self._refresh()

    def details(self) -> dict[str, str]:
        return dict(self._offer["details"])

    def offers(self) -> list[RuntimeOffer]:
        return list(self._offer["offers"])

    def templates(self) -> dict[str, str]:
        return dict(self._offer["templates"])

    def list_templates(self) -> list[TemplateMeta]:
        return list(self._offer["list_templates"])

    def template_meta(self, name: str) -> TemplateMeta | None:
        return next((m for m in self.list_templates() if m.name == name), None)

    def usage(self, host_id: str) -> ResourceUsage:
        self._asked.add(host_id)
        stale = time.monotonic() - self._usage_at > USAGE_REFRESH_S
        if stale and (self._usage_task is None or self._usage_task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to refresh with
                self._usage_task = asyncio.get_running_loop().create_task(self._refresh_usage())
        return self._usage.get(host_id, UNKNOWN_USAGE)

    async def _refresh_usage(self) -> None:
        asked, self._asked = sorted(self._asked), set()
        self._usage_at = time.monotonic()
        with contextlib.suppress(Exception):
            self._usage = await self.client.call("node", "usages", self.runtime, asked)

    # templates --------------------------------------------------------------------------------------
    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        try:
            meta: TemplateMeta = await self.client.call(
                self.target, "ensure_template", name, progress=progress, allow_build=allow_build
            )
        finally:
            await self._refresh()
        return meta

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        try:
            captured: TemplateMeta = await self._call("capture_template", host_id, meta, include_workspace)
        finally:
            await self._refresh()
        return captured

    async def delete_template(self, name: str) -> None:
        try:
            await self._call("delete_template", name)
        finally:
            await self._refresh()

    async def export_ext4(self, name: str, dest: Path) -> None:
        raise ActionNotSupported("A template's ext4 image is made on its node, by the node's microvm class.")

    # the durable layer ------------------------------------------------------------------------------
    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        raise ActionNotSupported(_DURABLE_ON_NODE)

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        raise ActionNotSupported(_DURABLE_ON_NODE)

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        raise ActionNotSupported(_DURABLE_ON_NODE)

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        raise ActionNotSupported(_DURABLE_ON_NODE)

    def workspace_dir(self, host_id: str) -> Path:
        raise ActionNotSupported(
            "Workspace sync reads a shell's disk on its node, not over the node RPC yet."
        )

    # lifecycle --------------------------------------------------------------------------------------
    async def create(self, spec: ShellSpec) -> None:
        await self._call("create", spec)

    async def start(self, spec: ShellSpec) -> None:
        await self._call("start", spec)

    async def stop(self, host_id: str) -> None:
        await self._call("stop", host_id)

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        await self._call("set_network", host_id, policy)

    async def destroy(self, host_id: str) -> None:
        await self._call("destroy", host_id)

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        await self._call("reset", spec, wipe_workspace=wipe_workspace)

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        await self._call("snapshot", host_id, snapshot_id)

    async def pause(self, host_id: str) -> None:
        await self._call("pause", host_id)

    async def resume(self, spec: ShellSpec) -> None:
        await self._call("resume", spec)

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        await self._call("fork", host_id, list(children))

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self._call("delete_snapshot", snapshot_id)

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        return cast(bytes, await self._call("logs", host_id, max_bytes))

    async def inventory(self) -> HostInventory:
        return cast(HostInventory, await self._call("inventory"))

    # inside a shell ---------------------------------------------------------------------------------
    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        if spec.stdin_stream is None:
            return self.client.items(self.target, "exec", host_id, spec, last=_exited)
        return self._fed("exec", spec.stdin_stream, host_id, spec)

    def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        if more is None:
            return self.client.items(self.target, "attach", host_id, pid, None, last=_exited)
        return self._fed("attach", more, host_id, pid)

    async def _fed(self, method: str, more: AsyncIterable[Any], *args: Any) -> AsyncIterator[Any]:
        """A streamed call whose input arrives while it runs (``more``, then its end)."""
        async with self.client.duplex(self.target, method, *args) as link:
            feeding = asyncio.ensure_future(_feed(link, more))
            try:
                while True:
                    kind, value = await link.receive()
                    if kind == "r":
                        return
                    yield value
            finally:
                feeding.cancel()
                with contextlib.suppress(BaseException):
                    await feeding

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return self._terminal(host_id, spec)

    @asynccontextmanager
    async def _terminal(self, host_id: str, spec: TerminalSpec) -> AsyncIterator[TerminalIO]:
        async with self.client.duplex(self.target, "terminal", host_id, spec) as link:
            await link.receive()  # "ok" once the terminal runs; its error otherwise
            yield RemoteTerminal(link)

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self.client.items(self.target, "read_file", host_id, path, max_bytes)

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        extra = dict(xattrs) if xattrs is not None else None
        async with self.client.duplex(self.target, "write_file", host_id, path, mode, owner, extra) as link:
            await _feed(link, chunks)
            _kind, size = await link.receive()
            return int(size)

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return cast(list[FileEntry], await self._call("list_dir", host_id, path, xattr_prefix))

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return cast(FileEntry, await self._call("stat", host_id, path, xattr_prefix))

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        await self._call("remove", host_id, path, recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        await self._call("mkdir", host_id, path, owner)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        return cast(FileEntry, await self._call("rename", host_id, source, destination))

    def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        return self.client.items(self.target, "watch", host_id, path, recursive)

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return cast(list[KeptProcess], await self._call("processes", host_id))

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        await self._call("signal", host_id, pid, signum)


def _exited(event: Any) -> bool:
    """An exec's or attach's exit: its caller stops there, and the call's last frame follows it."""
    return isinstance(event, ExecExit)


async def _feed(link: Duplex, more: AsyncIterable[Any]) -> None:
    async for item in more:
        await link.send("i", item)
    await link.send("eof", None)


class RemoteTerminal:
    def __init__(self, link: Duplex) -> None:
        self.link = link

    async def read(self) -> bytes | ExecExit:
        kind, value = await self.link.receive()
        if kind == "r":
            return ExecExit(-1)
        assert isinstance(value, bytes | ExecExit)
        return value

    async def write(self, data: bytes) -> None:
        await self.link.send("w", data)

    async def resize(self, cols: int, rows: int) -> None:
        await self.link.send("z", (cols, rows))


class RemoteNetwork:
    """``InstanceNetwork`` of a remote node: blocking calls (see the module's docstring)."""

    def __init__(self, client: NodeClient, hello: Mapping[str, Any]) -> None:
        self.client = client
        self._range: InstanceRange = hello["range"]
        self._gateways: list[IPv4Address] = list(hello["gateways"])
        self.underlay = underlay_of(client.url)
        """The node's address between machines (its URL's host), where its overlay links send from."""
        self.ingress = str(hello.get("ingress") or "")
        self.egress = bool(hello.get("egress"))
        """Whether the node runs an egress proxy (``node.egress``) to send its shells' secrets to."""
        """``host:port`` of the node's ingress proxy (``node.ingress``); empty: it serves none."""

    def _call(self, method: str, *args: Any) -> Any:
        return self.client.call_blocking("network", method, *args)

    @property
    def range(self) -> InstanceRange:
        return self._range

    def addresses(self, host_id: str) -> ShellAddresses:
        return cast(ShellAddresses, self._call("addresses", host_id))

    def gateway_addresses(self) -> list[IPv4Address]:
        return list(self._gateways)

    def create_network(self, net: PrivateNetwork) -> None:
        self._call("create_network", net)

    def delete_network(self, net_id: str) -> None:
        self._call("delete_network", net_id)

    def join(self, host_id: str, net: PrivateNetwork, hostname: str) -> str:
        return str(self._call("join", host_id, net, hostname))

    def leave(self, host_id: str, net_id: str) -> None:
        self._call("leave", host_id, net_id)

    def peers(self, net_id: str) -> dict[str, IPv4Address]:
        return cast(dict[str, IPv4Address], self._call("peers", net_id))

    def memberships(self, host_id: str) -> list[str]:
        return cast(list[str], self._call("memberships", host_id))

    def client_of(self, ip: IPv4Address | IPv6Address) -> str | None:
        return cast(str | None, self._call("client_of", ip))

    def policy_of(self, host_id: str) -> NetworkAccess | None:
        return cast(NetworkAccess | None, self._call("policy_of", host_id))

    def netns_of(self, host_id: str) -> str | None:
        return cast(str | None, self._call("netns_of", host_id))

    def drain_blocked(self) -> list[tuple[str, BlockedAttempt]]:
        return cast(list[tuple[str, BlockedAttempt]], self._call("drain_blocked"))

    def allow_resolved(
        self, host_id: str, rule: AllowRule, addresses: Sequence[IPv4Address | IPv6Address], ttl_s: int
    ) -> None:
        self._call("allow_resolved", host_id, rule, list(addresses), ttl_s)

    def set_ports(
        self,
        entries: Sequence[PortEntry],
        refused: Mapping[str, ShellsError] | None = None,
        report: bool = True,
    ) -> PortsReport:
        """Send the node's ingress proxy the whole table of its shells' exposed ports (and the wakes
        refused since the last one); what its proxy saw since then (nothing unless ``report``)."""
        answer = self.client.call_blocking("node", "set_ports", list(entries), dict(refused or {}), report)
        if not isinstance(answer, PortsReport):
            raise RuntimeFailure("The node's answer to set_ports is not a report of its ports.")
        return answer

    async def new_wakes(self, hold_s: float) -> bool:
        """Whether a request started waiting on a paused shell of the node, within ``hold_s``."""
        return bool(await self.client.call("node", "new_wakes", hold_s))

    def set_secrets(self, ca_key: str, ca_cert: str, table: Mapping[str, Sequence[Brokered]]) -> None:
        """Send the node's egress proxy the instance's CA and the whole table of its shells' secrets."""
        self.client.call_blocking(
            "node", "set_secrets", ca_key, ca_cert, {k: list(v) for k, v in table.items()}
        )

    def drain_secret_uses(self) -> list[SecretUse]:
        return cast(list[SecretUse], self.client.call_blocking("node", "drain_secret_uses"))

    # NodeOverlay ------------------------------------------------------------------------------------
    def overlay_members(self) -> dict[str, Members]:
        return cast(dict[str, Members], self._call("overlay_members"))

    def set_overlay(self, local: IPv4Address, plan: Plan) -> None:
        self._call("set_overlay", local, plan)


def underlay_of(url: str) -> IPv4Address | None:
    """The IPv4 address of a node URL's host (resolved when it is a name); None when it has none."""
    host = urlsplit(url).hostname or ""
    try:
        return IPv4Address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return None
