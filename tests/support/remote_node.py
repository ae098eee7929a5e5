"""A node agent (``shells.node.agent``) serving a fake node on loopback from a thread of the test's
process, so in-process tests can drive the control plane through the node RPC, wire and all."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from shells.domain.limits import NODE_RPC_MAX_FRAME_BYTES
from shells.node import Node
from shells.node.agent import NodeAgent
from shells.node.remote import connect_node
from shells.node.wire import Signer

from .fake_node import FakeNode, NullNetwork
from .waiting import wait_until


@contextmanager
def agent_serving(fake: FakeNode) -> Iterator[Node]:
    """``fake`` behind a node agent on a loopback port; yields the control plane's view of it."""
    secret = secrets.token_bytes(32)
    with agent_at(Node("fake", [fake], NullNetwork()), Signer(secret)) as url:
        yield connect_node(url, Signer(secret))


@contextmanager
def agent_at(node: Node, signer: Signer, port: int = 0) -> Iterator[str]:
    """A node agent serving ``node`` with ``signer`` on a loopback port (``port``, else a free
    one); yields its URL."""
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    config = uvicorn.Config(
        NodeAgent(node, signer).app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=NODE_RPC_MAX_FRAME_BYTES + 4096,
        loop="asyncio",  # the fake node's subprocesses are asyncio's
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="node agent")
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, "the node agent's start")
        assert server.started, "the node agent did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
