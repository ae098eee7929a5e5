"""A node agent's ingress proxy: the exposed ports of the shells this machine holds, served from here.

The records of exposed ports are the control plane's; it sends each node the whole table of its
shells' ports (``set_ports``, over the authenticated RPC) about once a second, and the node's proxy
(``runtime.network.ingress``, the same one a single box runs) answers from the last table it was sent.
A port the table lacks answers 404, so a closed port stops answering within that period. What the
record does not send is where the shell's network namespace is on this machine: the node adds it.

The answer to each ``set_ports`` is what the proxy saw since the last one (``PortsReport``): the
shells whose ports served a request (activity for the idle sweep, one entry per shell however many
requests) and the paused shells whose port a request now waits on (``Exposure.wakes``). The resume
is the control plane's: it resumes such a shell the way any resume goes, then sends this node its
table at once, and the waiting requests go on once the table shows the shell running; a wake the
control plane refused comes back with the next table as the error to answer (``refused``), and a
request waits at most ``WAKE_WAIT_S``. So that a wake need not wait for the next pass, the control
plane also holds a ``new_wakes`` call open on the node, answered as soon as a request starts
waiting: a mere signal to run the exchange for this node now (it carries no shell). The node
itself resumes nothing and reports only shells of its own table; the control plane believes a
report only for shells it sent this node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..domain.errors import InvalidRequest, RuntimeFailure, ShellsError
from ..domain.ids import looks_like
from ..domain.limits import NODE_MAX_EXPOSED_PORTS
from ..runtime.network.ingress import Exposure, IngressProxy

PortEntry = tuple[str, int, Exposure]
"""One exposed port as the control plane sends it: the shell's id, the port, the exposure (its
``netns`` left empty: the node knows where its namespaces are)."""

WAKE_HOLD_MAX_S = 30.0
"""The longest a ``new_wakes`` call is held open on the node."""
WAKE_WAIT_S = 120.0
"""How long a request to a paused shell's port waits for the control plane to resume it (a microvm
restored without KVM takes tens of seconds); past that it is answered 502 ``wake_failed``."""


@dataclass(frozen=True)
class PortsReport:
    """What a node's proxy saw since the last table (the answer to ``set_ports``)."""

    used: list[str] = field(default_factory=list)
    """Shells whose running port served at least one request: activity for the idle sweep."""
    wakes: dict[str, int] = field(default_factory=dict)
    """Paused shells (``Exposure.wakes``) a request waits on, each with a port one waits on."""


class NodePorts:
    """The ``ExposedPorts`` a node's ingress proxy asks: the table the control plane sent last."""

    def __init__(self, netns_dir: Path) -> None:
        self.netns_dir = netns_dir
        self._ports: dict[tuple[str, int], Exposure] = {}
        self._used: set[str] = set()
        self._waiting: dict[str, tuple[int, asyncio.Future[None]]] = {}
        """Per paused shell a request waits on: the port it asked and what settles the wait."""
        self._unreported = asyncio.Event()
        """Set when a request starts waiting on a shell no report has named yet (``new_wakes``)."""

    def set_ports(
        self,
        entries: Sequence[PortEntry],
        refused: Mapping[str, ShellsError] | None = None,
        *,
        report: bool = True,
    ) -> PortsReport:
        """Take ``entries`` as the whole table (what it lacks is closed), answer the requests waiting
        on a shell it shows awake (or closed, or no longer waking) or that ``refused`` names, and
        report what the proxy saw since the last report (``report``; else an empty one: a table sent
        on a change, by any replica, leaves the report to the singleton pass)."""
        if len(entries) > NODE_MAX_EXPOSED_PORTS:
            raise InvalidRequest(f"At most {NODE_MAX_EXPOSED_PORTS} exposed ports per node.")
        table: dict[tuple[str, int], Exposure] = {}
        for shell_id, port, exposure in entries:
            if not looks_like("sh", shell_id) or not isinstance(exposure, Exposure):
                raise InvalidRequest(f"Not an exposed port: {shell_id!r}.")
            table[(shell_id, int(port))] = replace(exposure, netns=str(self.netns_dir / shell_id))
        self._ports = table
        for shell_id, (port, settled) in list(self._waiting.items()):
            error = (refused or {}).get(shell_id)
            now = table.get((shell_id, port))
            if error is not None:
                settled.set_exception(error)
                settled.exception()  # retrieved: a waiter that gave up does not log it as lost
            elif now is None or not now.wakes:
                settled.set_result(None)
            else:
                continue
            del self._waiting[shell_id]
        if not report:
            return PortsReport()
        self._unreported.clear()
        used, self._used = self._used, set()
        return PortsReport(sorted(used), {s: port for s, (port, _) in self._waiting.items()})

    async def new_wakes(self, hold_s: float) -> bool:
        """Whether a request started waiting on a paused shell since the last report, answered as
        soon as one does or after ``hold_s`` (at most ``WAKE_HOLD_MAX_S``): the control plane holds
        this call open so a wake starts at once rather than at its next pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(max(float(hold_s), 0.0), WAKE_HOLD_MAX_S)):
                await self._unreported.wait()
        return self._unreported.is_set()

    def lookup(self, shell_id: str, port: int) -> Exposure | None:
        exposure = self._ports.get((shell_id, port))
        if exposure is not None and exposure.not_running is None:
            self._used.add(shell_id)
        return exposure

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        """Wait until the control plane has resumed the shell (or refused to); its port then."""
        if shell_id not in self._waiting:
            self._waiting[shell_id] = (port, asyncio.get_running_loop().create_future())
            self._unreported.set()
        settled = self._waiting[shell_id][1]
        try:
            async with asyncio.timeout(WAKE_WAIT_S):
                await asyncio.shield(settled)
        except TimeoutError:
            raise RuntimeFailure(
                f"the control plane did not resume it within {WAKE_WAIT_S:.0f} s; try again"
            ) from None
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


__all__ = ["WAKE_HOLD_MAX_S", "WAKE_WAIT_S", "NodeIngress", "NodePorts", "PortEntry", "PortsReport"]
