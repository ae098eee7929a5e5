"""What the control plane believes of a node's report on its ports (``control.node_ports``): traffic
only for shells the table it just sent that node holds, a wake only for one sent as paused with
``auto_resume``; a refused wake goes back to that node with its next table."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import anyio
import pytest

from shells.control.context import ControlContext
from shells.control.node_ports import NodePortTables
from shells.domain.errors import BudgetExceeded, ShellsError
from shells.node.ingress import PortEntry, PortsReport
from shells.node.remote import RemoteNetwork
from shells.runtime.network.ingress import Exposure
from shells.settings import Settings
from shells.store.networking import NetworkingStore
from shells.store.repository import Store

HELD, PAUSED, ELSEWHERE = "sh_heldheldheld1", "sh_pausedpaused1", "sh_elsewhere0001"


class NoPorts:
    def all_ports(self) -> list[object]:
        return []


class Node:
    """A node's side of ``set_ports``: what it was sent."""

    def __init__(self) -> None:
        self.refused: list[dict[str, ShellsError]] = []

    def set_ports(
        self, entries: list[PortEntry], refused: dict[str, ShellsError] | None, report: bool
    ) -> PortsReport:
        self.refused.append(dict(refused or {}))
        return PortsReport()


class OneNode(NodePortTables):
    node = Node()

    def _nodes(self) -> dict[str, RemoteNetwork]:
        return {"node-a": cast(RemoteNetwork, self.node)}


@pytest.mark.anyio
async def test_a_report_is_believed_only_for_the_shells_sent_to_that_node(tmp_path: Path) -> None:
    used: list[str] = []
    woken: list[tuple[str, str]] = []

    async def wake(shell_id: str, why: str) -> None:
        woken.append((shell_id, why))
        raise BudgetExceeded("Over budget.")

    ctx = ControlContext(Settings(data_dir=tmp_path), cast(Store, None), {})
    tables = OneNode(ctx, cast(NetworkingStore, NoPorts()), lambda r, s: None, used.append, wake)
    sent: list[PortEntry] = [
        (HELD, 8000, Exposure(netns="")),
        (PAUSED, 8000, Exposure(netns="", not_running="paused", wakes=True)),
    ]
    report = PortsReport(used=[HELD, ELSEWHERE, PAUSED], wakes={HELD: 8000, PAUSED: 8001, ELSEWHERE: 8000})
    tables._take("node-a", sent, report)
    with anyio.fail_after(5):
        while not woken or ctx.background.names():
            await anyio.sleep(0.01)
    assert used == [HELD, PAUSED]  # counted as the node saw them; the shell elsewhere is not
    assert woken == [(PAUSED, "a request to port 8001 on node node-a")]  # running or not held: no wake
    [answer] = tables.node.refused  # the refusal, sent at once with the node's table
    assert isinstance(answer.get(PAUSED), BudgetExceeded) and set(answer) == {PAUSED}
    await ctx.background.stop()
