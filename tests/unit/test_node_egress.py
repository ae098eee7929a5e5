"""A node's table of brokered secrets (``node.egress``): taken whole from the control plane, asked
per host as one box's policy is, and its uses kept (capped) until collected."""

from __future__ import annotations

from typing import cast

import pytest

from shells.domain.errors import InvalidRequest
from shells.domain.limits import NODE_MAX_SECRET_USES
from shells.domain.secrets import Brokered
from shells.node.codec import dumps, loads
from shells.node.egress import NodeSecrets
from shells.runtime.network.contract import InstanceNetwork

SHELL = "sh_abcdefgh1234"
TOKEN = Brokered("TOKEN", ("api.example.org", "*.example.net"), None, "placeholder1", "value1")


def test_secrets_cross_the_wire_and_are_given_only_for_their_hosts() -> None:
    table = NodeSecrets(cast(InstanceNetwork, None))
    assert table.set_secrets(loads(dumps({SHELL: [TOKEN]}))) == 1
    assert table.secrets_for(SHELL, "api.example.org") == [TOKEN]
    assert table.secrets_for(SHELL, "x.example.net") == [TOKEN]
    assert table.secrets_for(SHELL, "evil.test") == []
    assert table.secrets_for("sh_other0000000", "api.example.org") == []
    table.set_secrets({})  # the new table lacks it: gone at once
    assert table.secrets_for(SHELL, "api.example.org") == []


def test_uses_are_kept_until_drained_and_capped() -> None:
    table = NodeSecrets(cast(InstanceNetwork, None))
    for _ in range(NODE_MAX_SECRET_USES + 5):
        table.used(SHELL, "api.example.org", ["TOKEN"])
    uses = table.drain_uses()
    assert len(uses) == NODE_MAX_SECRET_USES and uses[0] == (SHELL, "api.example.org", ["TOKEN"])
    assert table.drain_uses() == []


@pytest.mark.parametrize("shell_id", ["../x", "snap_abcdefgh1234"])
def test_a_table_that_is_not_shells_secrets_is_refused(shell_id: str) -> None:
    with pytest.raises(InvalidRequest):
        NodeSecrets(cast(InstanceNetwork, None)).set_secrets({shell_id: [TOKEN]})
