"""A node agent's ingress proxy: the exposed ports of the shells this machine holds, served from here.

The records of exposed ports are the control plane's; it sends each node the whole table of its
shells' ports (``set_ports``, over the authenticated RPC) about once a second, and the node's proxy
(``runtime.network.ingress``, the same one a single box runs) answers from the last table it was sent.
A port the table lacks answers 404, so a closed port stops answering within that period. What the
record does not send is where the shell's network namespace is on this machine: the node adds it.

A node answers for its own shells only; a paused shell whose port would wake it answers 409 here
(the resume is the control plane's), and requests to a node's ports are not reported to the idle
sweep as activity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..domain.errors import InvalidRequest
from ..domain.ids import looks_like
from ..domain.limits import NODE_MAX_EXPOSED_PORTS
from ..runtime.network.ingress import Exposure, IngressProxy

PortEntry = tuple[str, int, Exposure]
"""One exposed port as the control plane sends it: the shell's id, the port, the exposure (its
``netns`` left empty: the node knows where its namespaces are)."""


class NodePorts:
    """The ``ExposedPorts`` a node's ingress proxy asks: the table the control plane sent last."""

    def __init__(self, netns_dir: Path) -> None:
        self.netns_dir = netns_dir
        self._ports: dict[tuple[str, int], Exposure] = {}

    def set_ports(self, entries: Sequence[PortEntry]) -> int:
        """Take ``entries`` as the whole table (what it lacks is closed); returns how many."""
        if len(entries) > NODE_MAX_EXPOSED_PORTS:
            raise InvalidRequest(f"At most {NODE_MAX_EXPOSED_PORTS} exposed ports per node.")
        table: dict[tuple[str, int], Exposure] = {}
        for shell_id, port, exposure in entries:
            if not looks_like("sh", shell_id) or not isinstance(exposure, Exposure):
                raise InvalidRequest(f"Not an exposed port: {shell_id!r}.")
            table[(shell_id, int(port))] = replace(exposure, netns=str(self.netns_dir / shell_id))
        self._ports = table
        return len(table)

    def lookup(self, shell_id: str, port: int) -> Exposure | None:
        return self._ports.get((shell_id, port))

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        return self.lookup(shell_id, port)


class NodeIngress:
    """The node's proxy on ``host:port`` (port 0: any free one) and the table it answers from."""

    def __init__(self, netns_dir: Path, host: str, port: int, domain: str) -> None:
        self.ports = NodePorts(netns_dir)
        self.host, self.wanted = host, port
        self.proxy = IngressProxy(self.ports, domain)
        self.address = ""
        """``host:port`` where it answers once started (what the node tells the control plane)."""

    async def start(self) -> None:
        await self.proxy.start(self.host, self.wanted)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.address = f"{host}:{self.proxy.port}"

    async def close(self) -> None:
        await self.proxy.close()


__all__ = ["NodeIngress", "NodePorts", "PortEntry"]
