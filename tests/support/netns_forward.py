"""A TCP port of this host's loopback made reachable on the loopback of a network namespace, so a
process inside the namespace (a node agent on its own "machine") can reach a service the tests bind
to 127.0.0.1 here (the Kubernetes API server), under the same address its certificate names.

The listening socket is made inside the namespace (``run_in_netns``: a socket stays in the
namespace it was made in); the rest of this runs in the host's.
Each accepted connection is then joined to a fresh connection to the host's port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shells.runtime.host.netns import run_in_netns


def _listener_in(netns: str, port: int) -> socket.socket:
    return run_in_netns(f"/run/netns/{netns}", lambda: socket.create_server(("127.0.0.1", port)))


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextmanager
def forwarded_into(netns: str, port: int) -> Iterator[None]:
    """127.0.0.1:``port`` inside ``netns`` reaches 127.0.0.1:``port`` here until the block ends."""
    listener = _listener_in(netns, port)
    open_sockets: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                inside, _ = listener.accept()
            except OSError:
                return
            try:
                outside = socket.create_connection(("127.0.0.1", port))
            except OSError:
                inside.close()
                continue
            open_sockets.extend((inside, outside))
            threading.Thread(target=_pump, args=(inside, outside), daemon=True).start()
            threading.Thread(target=_pump, args=(outside, inside), daemon=True).start()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        accepting.join(timeout=5)
        for s in open_sockets:
            with contextlib.suppress(OSError):
                s.close()
