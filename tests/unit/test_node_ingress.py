"""A node's table of exposed ports (``node.ingress``): taken whole from the control plane, with the
node's own namespace paths, and nothing but shells' ports in it; what the proxy saw (traffic, requests
waiting on a paused shell) reported back with each table, and a waiting request let go by the table
that shows its shell awake or by the refusal sent with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from shells.domain.errors import InvalidRequest, QuotaExceeded
from shells.node.codec import dumps, loads
from shells.node.ingress import NodePorts, PortsReport
from shells.runtime.network.ingress import Exposure

SHELL = "sh_abcdefgh1234"


def test_the_table_is_replaced_whole_and_netns_is_the_nodes_own(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path / "netns")
    sent = Exposure(netns="/elsewhere/netns/x", public=True)
    ports.set_ports(loads(dumps([(SHELL, 8000, sent), (SHELL, 8001, sent)])))
    found = ports.lookup(SHELL, 8000)
    assert found is not None and found.netns == str(tmp_path / "netns" / SHELL) and found.public
    ports.set_ports([(SHELL, 8001, sent)])
    assert ports.lookup(SHELL, 8000) is None  # closed: the new table lacks it
    assert ports.lookup(SHELL, 8001) is not None


@pytest.mark.parametrize("shell_id", ["../../etc", "sh_x", "snap_abcdefgh1234"])
def test_an_entry_that_is_not_a_shells_port_is_refused(tmp_path: Path, shell_id: str) -> None:
    ports = NodePorts(tmp_path)
    with pytest.raises(InvalidRequest):
        ports.set_ports([(shell_id, 8000, Exposure(netns=""))])


PAUSED = Exposure(netns="", public=True, not_running="paused", wakes=True)
RUNNING = Exposure(netns="", public=True)


def test_traffic_is_reported_once_per_shell_and_only_for_a_running_one(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path)
    other = "sh_zyxwvuts9876"
    ports.set_ports([(SHELL, 8000, RUNNING), (other, 8000, PAUSED)])
    for _ in range(3):
        ports.lookup(SHELL, 8000)
    ports.lookup(other, 8000)
    report = ports.set_ports(loads(dumps([(SHELL, 8000, RUNNING)])))
    assert loads(dumps(report)) == PortsReport(used=[SHELL], wakes={})
    assert ports.set_ports([]).used == []  # drained


@pytest.mark.anyio
async def test_a_request_waits_for_the_table_that_shows_its_shell_awake(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path)
    ports.set_ports([(SHELL, 8000, PAUSED)])
    found: list[Exposure | None] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _wake_into(ports, found))
        await anyio.sleep(0.05)
        assert ports.set_ports([(SHELL, 8000, PAUSED)]).wakes == {SHELL: 8000}  # still waiting
        assert not found
        assert ports.set_ports([(SHELL, 8000, RUNNING)]).wakes == {}
    assert found and found[0] is not None and found[0].not_running is None


@pytest.mark.anyio
async def test_a_refused_wake_is_the_waiting_requests_answer(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path)
    ports.set_ports([(SHELL, 8000, PAUSED)])
    waiting = asyncio.create_task(ports.wake(SHELL, 8000))
    await asyncio.sleep(0.05)
    report = ports.set_ports([(SHELL, 8000, PAUSED)], loads(dumps({SHELL: QuotaExceeded("Over budget.")})))
    assert report.wakes == {}  # answered: no longer waiting
    with pytest.raises(QuotaExceeded, match="Over budget"):
        await waiting


async def _wake_into(ports: NodePorts, found: list[Exposure | None]) -> None:
    found.append(await ports.wake(SHELL, 8000))


@pytest.mark.anyio
async def test_a_held_call_learns_of_a_new_waiting_request_until_it_is_reported(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path)
    ports.set_ports([(SHELL, 8000, PAUSED)])
    assert await ports.new_wakes(0.05) is False  # nothing waits: the hold runs out
    held = asyncio.create_task(ports.new_wakes(30))
    waiting = asyncio.create_task(ports.wake(SHELL, 8000))
    assert await asyncio.wait_for(held, 5) is True  # answered at once, not after the hold
    assert await ports.new_wakes(30) is True  # still unreported
    assert ports.set_ports([(SHELL, 8000, PAUSED)]).wakes == {SHELL: 8000}
    assert await ports.new_wakes(0.05) is False  # reported: the control plane knows
    ports.set_ports([(SHELL, 8000, RUNNING)])
    assert (await waiting) is not None
