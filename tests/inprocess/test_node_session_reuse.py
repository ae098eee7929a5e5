"""Execs through the node RPC ride the control plane's pooled sessions: a caller that stops at an
exec's exit (every exec's caller does) must leave its session whole for the next call, or every exec
pays a new connection and a signed WebSocket handshake (issue 18: that was most of the milliseconds
an exec through a node added)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from pathlib import Path

import pytest

from shells.domain.errors import RuntimeFailure
from shells.domain.execution import ExecExit, ExecSpec, OutputChunk
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shapes import get_shape
from shells.node import Node
from shells.node.remote import connect_node
from shells.node.wire import Signer
from shells.runtime.backend import Backend, ShellSpec

from ..support.fake_node import FakeNode, NullNetwork
from ..support.remote_node import agent_at

pytestmark = pytest.mark.anyio


class CountingSigner(Signer):
    """The node's signer, counting the requests and handshakes it authenticated."""

    def __init__(self, secret: bytes) -> None:
        super().__init__(secret)
        self.verified = 0

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        self.verified += 1
        return super().verify(method, path, headers, body)


async def _run(backend: Backend, host_id: str, argv: list[str]) -> tuple[bytes, int]:
    """The command's stdout and exit code, the caller stopping at the exit as ``control.inside`` does."""
    out = b""
    events = backend.exec(host_id, ExecSpec(argv=tuple(argv)))
    async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            if isinstance(event, OutputChunk):
                out += event.data
            if isinstance(event, ExecExit):
                return out, event.exit_code
    raise AssertionError("the exec ended without its exit")


async def test_execs_one_after_another_reuse_one_authenticated_session(tmp_path: Path) -> None:
    secret = secrets.token_bytes(32)
    fake = FakeNode(tmp_path / "node")
    await fake.prepare()
    node_signer = CountingSigner(secret)
    with agent_at(Node("fake", [fake], NullNetwork()), node_signer) as url:
        node = connect_node(url, Signer(secret))
        try:
            backend = node.backends[0]
            sealed = NetworkAccess(mode=NetworkMode.SEALED)
            await backend.create(ShellSpec("sh_reuse", "base:1", get_shape("s-1vcpu-512mb"), sealed))
            before = node_signer.verified
            for i in range(10):
                assert await _run(backend, "sh_reuse", ["sh", "-c", f"echo {i}; exit {i % 3}"]) == (
                    f"{i}\n".encode(),
                    i % 3,
                )
            # an exec that fails on the node ends its answer with an error frame: still in step
            with pytest.raises(RuntimeFailure):
                await _run(backend, "sh_missing", ["true"])
            assert await _run(backend, "sh_reuse", ["echo", "after"]) == (b"after\n", 0)
            assert node_signer.verified == before, "an exec opened a new session instead of reusing one"
        finally:
            await node.close()
