"""The exposed ports of a cluster's nodes (``node.ingress``): each node sent its table, and what its
proxy saw taken back, so a node's ports behave as one box's do.

Every second the replica holding the singleton duties sends each node that runs an ingress proxy the
whole table of its shells' exposed ports (``set_ports``) and takes back the node's ``PortsReport``:

- ``used``: each shell whose port served a request since the last pass counts as active now for the
  idle sweep (which runs on this same replica): one entry per shell per pass, so port traffic costs
  the control plane nothing per request;
- ``wakes``: each paused shell with ``auto_resume`` a request waits on is resumed through
  ``Suspension.wake``, the resume every door uses (the budget check, the ``resume`` audit row by the
  system with the port and node that asked, metering from the state change); then that node alone is
  sent its table at once, so the waiting request goes on without waiting for the next pass. A wake
  that fails or is refused travels with that table as the error the waiting requests answer
  (403 for a budget, 409 for a refusal, 502 for a failed resume). So that a wake does not wait for
  the next pass, the same replica holds a ``new_wakes`` call open on each node (``watch``), which the
  node answers the moment a request starts waiting; it only starts that node's exchange now.

A report is believed only for shells this pass sent that node, and a wake only for a port sent as
``wakes``: a node cannot mark or wake a shell it does not hold, and no shell can speak on this channel
(the control plane calls the node over the authenticated RPC; the node never calls in)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import anyio

from ..domain.errors import InvalidState, RuntimeFailure, ShellsError
from ..domain.networking import ExposedPort
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..node.ingress import PortEntry, PortsReport
from ..node.remote import RemoteNetwork
from ..runtime.network.ingress import Exposure
from ..store.networking import NetworkingStore
from .context import ControlContext

log = logging.getLogger(__name__)

PORTS_POLL_S = 1.0
"""How often each node of a cluster is sent its shells' exposed ports (a port exposed or closed
answers so on the shell's node within about this long, and a wake a request waits on starts)."""

WAKE_HOLD_S = 10.0
"""How long each ``new_wakes`` call is held open on a node before it is made again."""
CALL_SLACK_S = 10.0
"""Past the hold, how long a node may take to answer before the call is given up."""

Sent = dict[str, tuple[list[PortEntry], PortsReport]]
"""Per node: the table sent and the node's report."""


class NodePortTables:
    def __init__(
        self,
        ctx: ControlContext,
        records: NetworkingStore,
        exposure: Callable[[ExposedPort, ShellRecord], Exposure | None],
        used: Callable[[str], None],
        wake: Callable[[str, str], Awaitable[object]],
    ) -> None:
        self.ctx, self.records, self.exposure = ctx, records, exposure
        self.used, self.wake = used, wake
        self._refused: dict[str, dict[str, ShellsError]] = {}
        """Per node, the wakes refused since its last table: sent with the next one."""
        self._stale: set[str] = set()
        """Nodes whose table changed since it was last sent (``changed``)."""

    def _nodes(self) -> dict[str, RemoteNetwork]:
        fleet = self.ctx.fleet
        members = fleet.members.values() if fleet is not None else ()
        return {
            m.name: m.network for m in members if isinstance(m.network, RemoteNetwork) and m.network.ingress
        }

    async def watch(self) -> None:
        """Hold a ``new_wakes`` call open on each node (a singleton duty): a node answers it as soon
        as a request starts waiting on a paused shell, and that node's exchange runs at once."""
        for name in self._nodes():
            self.ctx.background.run(f"waiting for wakes on node {name}", partial(self._watch, name))

    async def _watch(self, name: str) -> None:
        while self.ctx.background.leader() and (network := self._nodes().get(name)) is not None:
            try:
                with anyio.fail_after(WAKE_HOLD_S + CALL_SLACK_S):
                    wanted = await network.new_wakes(WAKE_HOLD_S)
            except (ShellsError, TimeoutError):
                return  # the next pass starts it again
            if (
                wanted
                and self.ctx.background.leader()
                and name not in await self._exchange([name], report=True)
            ):
                return  # the node did not take its table: the pass after next tries again

    def changed(self, shell: ShellRecord) -> None:
        """The shell just paused, stopped or resumed (``ControlContext.moved``): its node is sent its
        table now, so its proxy neither forwards to a paused shell nor waits a pass to see it back.
        Any replica may send it (the table is the record's); only the singleton pass takes reports."""
        if shell.node in self._nodes():
            self._stale.add(shell.node)
            self.ctx.background.run("sending changed exposed ports to nodes", self._send_stale)

    async def _send_stale(self) -> None:
        while self._stale:
            names, self._stale = sorted(self._stale), set()
            await self._exchange(names, report=False)

    async def exchange(self, only: str | None = None) -> None:
        """One pass (to node ``only``, or to every node): tables sent, reports taken."""
        await self._exchange([only] if only is not None else list(self._nodes()), report=True)

    async def _exchange(self, names: list[str], *, report: bool) -> Sent:
        refused = {name: self._refused.pop(name, {}) for name in names} if report else {}
        sent = await anyio.to_thread.run_sync(self._send, names, refused, report)
        for name, (entries, seen) in sent.items():
            self._take(name, entries, seen)
        return sent

    def _send(self, names: list[str], refused: dict[str, dict[str, ShellsError]], report: bool) -> Sent:
        nodes = self._nodes()
        tables: dict[str, list[PortEntry]] = {name: [] for name in names if name in nodes}
        for rec in self.records.all_ports():
            shell = self.ctx.store.get_shell(rec.shell_id)
            if shell is None or shell.node not in tables:
                continue
            if (exposure := self.exposure(rec, shell)) is not None:
                tables[shell.node].append((shell.id, rec.port, exposure))
        sent: Sent = {}
        for name, entries in tables.items():
            try:
                sent[name] = (entries, nodes[name].set_ports(entries, refused.get(name), report))
            except ShellsError as exc:  # it keeps its last table until the next pass
                log.warning("node %s did not take its exposed ports: %s", name, exc)
        return sent

    def _take(self, node: str, entries: list[PortEntry], report: PortsReport) -> None:
        held = {shell_id for shell_id, _, _ in entries}
        waking = {shell_id for shell_id, _, exposure in entries if exposure.wakes}
        for shell_id in report.used:
            if shell_id in held:
                self.used(shell_id)
        for shell_id, port in report.wakes.items():
            if shell_id in waking:
                self.ctx.background.run(
                    f"waking {shell_id} for its node's ingress", partial(self._wake, node, shell_id, port)
                )

    async def _wake(self, node: str, shell_id: str, port: int) -> None:
        """Resume the shell as any resume goes, then send its node the table that shows it."""
        try:
            shell = await self.wake(shell_id, f"a request to port {port} on node {node}")
        except ShellsError as exc:
            self._refused.setdefault(node, {})[shell_id] = exc
        except Exception as exc:  # the request gets a 502 with the reason, not a wait
            log.exception("waking %s for a request on node %s failed", shell_id, node)
            self._refused.setdefault(node, {})[shell_id] = RuntimeFailure(f"the resume failed: {exc}")
        else:
            if isinstance(shell, ShellRecord) and shell.state is not ShellState.RUNNING:
                self._refused.setdefault(node, {})[shell_id] = InvalidState(
                    f"Shell {shell_id} is {shell.state.value} and cannot be woken by a request: "
                    f"resume it (POST /v1/shells/{shell_id}/actions/resume).",
                    {"state": shell.state.value},
                )
        await self.exchange(node)
