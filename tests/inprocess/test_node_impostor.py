"""The control plane trusts no answer it cannot authenticate: an impostor node that takes every
request but signs with another secret is refused, on the plain HTTP call and on a session."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path

import pytest

from shells.domain.errors import Unavailable
from shells.domain.isolation import Runtime
from shells.node import Node
from shells.node.client import NodeClient
from shells.node.remote import connect_node
from shells.node.wire import Signer

from ..support.fake_node import FakeNode, NullNetwork
from ..support.remote_node import agent_at


class Gullible(Signer):
    """An agent that skips the check of who calls (what a stolen or forged node would do)."""

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        return headers.get("x-shells-nonce", "")

    def open(self, direction: str, nonce: str, seq: int, line: bytes) -> bytes:
        return line.rstrip(b"\n").partition(b" ")[2]


def test_an_impostor_nodes_answers_are_refused(tmp_path: Path) -> None:
    node = Node("impostor", [FakeNode(tmp_path)], NullNetwork())
    with (
        agent_at(node, Gullible(secrets.token_bytes(32))) as url,
        pytest.raises(Unavailable, match="does not authenticate"),
    ):
        connect_node(url, Signer(secrets.token_bytes(32)))


@pytest.mark.anyio
async def test_a_session_with_an_impostor_is_refused_at_its_first_frame(tmp_path: Path) -> None:
    node = Node("impostor", [FakeNode(tmp_path)], NullNetwork())
    with agent_at(node, Gullible(secrets.token_bytes(32))) as url:
        client = NodeClient(url, Signer(secrets.token_bytes(32)))
        try:
            with pytest.raises(Unavailable, match="bad frame signature"):
                await client.call("node", "usages", Runtime.CONTAINER, [])
            assert not client._idle  # a session that failed is never reused
        finally:
            await client.aclose()
