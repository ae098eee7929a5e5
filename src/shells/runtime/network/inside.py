"""Sockets that belong to a shell's network namespace, made from the host.

A socket stays in the netns it was created in, whichever thread uses it later. So the host reaches a
service that listens on 127.0.0.1 inside a shell by creating the socket in a short-lived thread that
has joined the shell's netns (``setns`` moves only the calling thread) and connecting it from the
event loop. No route, veth or address on the host side is needed, so it works for ``localhost``
shells, which have nothing but ``lo``, as well as ``internet`` ones. The thread
(``netns.run_in_netns``) exits right after the ``socket()`` call, so the host keeps no reference to
the namespace (the socket itself does, while it is open).
"""

from __future__ import annotations

import asyncio
import socket

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import netns

_JOIN_TIMEOUT_S = 5.0
LOOPBACK = "127.0.0.1"
"""Where a container's servers are reached from inside its namespace (``Backend.port_address``)."""


async def socket_inside(
    netns_path: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new non-blocking socket in the netns bound at ``netns_path``.

    Raises ``RuntimeFailure`` when the namespace cannot be joined (the file is gone because the shell
    stopped, or it is not a netns)."""

    def make() -> socket.socket:
        sock = socket.socket(family, kind)
        sock.setblocking(False)
        return sock

    try:
        return await asyncio.to_thread(netns.run_in_netns, netns_path, make, _JOIN_TIMEOUT_S)
    except OSError as exc:
        raise RuntimeFailure(f"joining the network namespace {netns_path} failed: {exc.strerror}") from exc


async def open_connection_inside(
    netns_path: str, port: int, *, host: str = LOOPBACK, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port`` as seen from inside the netns at ``netns_path``.

    Raises ``RuntimeFailure`` if the namespace cannot be joined and ``OSError`` (ECONNREFUSED,
    ENETUNREACH for a sealed shell, …) if the connection fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = await socket_inside(netns_path, family)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        return await asyncio.open_connection(sock=sock, limit=limit)
    except BaseException:
        sock.close()
        raise
