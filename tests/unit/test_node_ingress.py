"""A node's table of exposed ports (``node.ingress``): taken whole from the control plane, with the
node's own namespace paths, and nothing but shells' ports in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shells.domain.errors import InvalidRequest
from shells.node.codec import dumps, loads
from shells.node.ingress import NodePorts
from shells.runtime.network.ingress import Exposure

SHELL = "sh_abcdefgh1234"


def test_the_table_is_replaced_whole_and_netns_is_the_nodes_own(tmp_path: Path) -> None:
    ports = NodePorts(tmp_path / "netns")
    sent = Exposure(netns="/elsewhere/netns/x", public=True)
    assert ports.set_ports(loads(dumps([(SHELL, 8000, sent), (SHELL, 8001, sent)]))) == 2
    found = ports.lookup(SHELL, 8000)
    assert found is not None and found.netns == str(tmp_path / "netns" / SHELL) and found.public
    assert ports.set_ports([(SHELL, 8001, sent)]) == 1
    assert ports.lookup(SHELL, 8000) is None  # closed: the new table lacks it
    assert ports.lookup(SHELL, 8001) is not None


@pytest.mark.parametrize("shell_id", ["../../etc", "sh_x", "snap_abcdefgh1234"])
def test_an_entry_that_is_not_a_shells_port_is_refused(tmp_path: Path, shell_id: str) -> None:
    ports = NodePorts(tmp_path)
    with pytest.raises(InvalidRequest):
        ports.set_ports([(shell_id, 8000, Exposure(netns=""))])
