"""A node agent (``shells.node.agent``) serving a fake node on loopback from a thread of the test's
process, so in-process tests can drive the control plane through the node RPC, wire and all."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import uvicorn

from shells.domain.limits import NODE_RPC_MAX_FRAME_BYTES
from shells.domain.nodes import NodeOffer
from shells.node import Node
from shells.node.agent import NodeAgent
from shells.node.carrier import LocalCarrier
from shells.node.remote import connect_node
from shells.node.wire import Signer, load_secret
from shells.objects.store import S3Location, S3Objects

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

    def offer() -> NodeOffer:  # a fake node: the tests' region, room for whatever they create
        classes = frozenset(b.runtime for b in node.backends)
        return NodeOffer(node.name, f"127.0.0.1:{port}", "local", "", classes, "", 64, 64, 1 << 20, 1 << 20)

    config = uvicorn.Config(
        NodeAgent(node, signer, offer=offer).app(),
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


@contextmanager
def fake_cluster(
    root: Path, object_store: str, names: Sequence[str]
) -> Iterator[tuple[list[FakeNode], dict[str, object]]]:
    """Fake nodes ``names``, each behind its own node agent with its own connection to the object
    store (``object_store``, an S3 URL) as a real node agent has; yields the fakes and the settings
    that make a control plane drive them (``nodes``, ``cluster_secret_file``, ``object_store``)."""
    secret_file = root / "cluster-secret"
    root.mkdir(parents=True, exist_ok=True)
    secret_file.write_text(secrets.token_urlsafe(48))
    fakes = [FakeNode(root / name) for name in names]
    with ExitStack() as stack:
        urls = []
        for name, fake in zip(names, fakes, strict=True):
            objects = S3Objects(S3Location.parse(object_store))
            carrier = LocalCarrier({fake.runtime: fake}, objects, root / name / "durable")
            node = Node(name, [fake], NullNetwork(), carrier=carrier)
            urls.append(stack.enter_context(agent_at(node, Signer(load_secret(secret_file)))))
        settings: dict[str, object] = {
            "nodes": tuple(urls),
            "cluster_secret_file": secret_file,
            "object_store": object_store,
        }
        yield fakes, settings
