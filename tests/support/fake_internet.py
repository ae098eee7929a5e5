"""A stand-in for "the internet" (and a cloud metadata service) inside one network namespace.

Nothing beyond this machine may be reached by tests, so the destinations a shell's policy is tested
against live here: a netns joined to the host by a veth pair over a small transfer link, with the
host routing the documentation ranges (and 169.254.169.254) into it. Servers run in one thread of
the test process, on sockets created inside the netns:

    198.51.100.10, 198.51.100.11, 203.0.113.10, 203.0.113.11, 169.254.169.254
        TCP 53, 80, 443, 8080: send ``b"<address>:<port> from <client address>\\n"`` and close
        UDP 53, 5353: answer each datagram with the same line
        ICMP echo: answered by the kernel
    2001:db8::10 (TCP 80 only; the host does not route IPv6 for shells, so nothing should arrive)

Every connection and datagram is logged in :attr:`FakeInternet.seen` as (server address, port,
client address), so a test can prove a packet did *not* arrive as well as that one did.

Use it as a context manager (``with FakeInternet() as net: ...``); leaving it removes the netns,
the veth pair and the host routes. The transfer link is 100.127.253.0/30 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from shells.runtime.host import netns

SERVERS_V4 = ("198.51.100.10", "198.51.100.11", "203.0.113.10", "203.0.113.11", "169.254.169.254")
SERVER_V6 = "2001:db8::10"
ROUTED_V4 = ("198.51.100.0/24", "203.0.113.0/28", "169.254.169.254/32")
"""Only the first 16 addresses of 203.0.113.0/24: on these machines the package registries (Debian,
PyPI, npm) resolve to a proxy at 203.0.113.80, and routing the whole /24 here would cut the host
(and every template build running meanwhile) off from them."""
TCP_PORTS = (53, 80, 443, 8080)
UDP_PORTS = (53, 5353)


def _ip(*args: str, netns_path: str | None = None) -> None:
    cmd = ["ip", *args] if netns_path is None else ["nsenter", f"--net={netns_path}", "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


class FakeInternet:
    def __init__(self, transfer: str = "100.127.253.0/30") -> None:
        net = ipaddress.IPv4Network(transfer)
        self.host_address, self.peer_address = net[1], net[2]
        self.tag = secrets.token_hex(3)
        self.host_link = f"fi{self.tag}h"
        self._dir = Path(tempfile.mkdtemp(prefix="shells-fakenet-", dir="/var/tmp"))
        self.netns_path = str(self._dir / "internet")
        self.seen: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    # set-up ---------------------------------------------------------------------------------------
    def __enter__(self) -> FakeInternet:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _build(self) -> None:
        netns.ensure_private_mount(str(self._dir))
        netns.create_loopback_netns(self.netns_path)
        ns = self.netns_path
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", "fi0", "netns", ns)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("addr", "add", f"{self.peer_address}/30", "dev", "fi0", netns_path=ns)
        _ip("link", "set", "fi0", "up", netns_path=ns)
        _ip("route", "add", "default", "via", str(self.host_address), netns_path=ns)
        for address in SERVERS_V4:
            _ip("addr", "add", f"{address}/32", "dev", "lo", netns_path=ns)
        _ip("-6", "addr", "add", f"{SERVER_V6}/128", "dev", "lo", "nodad", netns_path=ns)
        for dest in ROUTED_V4:
            _ip("route", "add", dest, "via", str(self.peer_address), "dev", self.host_link)
        for address in SERVERS_V4:
            for port in TCP_PORTS:
                self._listen(socket.AF_INET, socket.SOCK_STREAM, address, port)
            for port in UDP_PORTS:
                self._listen(socket.AF_INET, socket.SOCK_DGRAM, address, port)
        self._listen(socket.AF_INET6, socket.SOCK_STREAM, SERVER_V6, 80)
        self._thread = threading.Thread(target=self._serve, name="fake-internet", daemon=True)
        self._thread.start()

    def _listen(self, family: int, kind: int, address: str, port: int) -> None:
        def bound() -> socket.socket:
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(64)
            sock.setblocking(False)
            return sock

        self._sockets.append(netns.run_in_netns(self.netns_path, bound))

    # serving --------------------------------------------------------------------------------------
    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in self._sockets:
                sel.register(sock, selectors.EVENT_READ)
            sel.register(self._stop_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj == self._stop_r:
                        return
                    assert isinstance(key.fileobj, socket.socket)
                    self._answer(key.fileobj)

    def _answer(self, sock: socket.socket) -> None:
        address, port = sock.getsockname()[:2]
        try:
            if sock.type == socket.SOCK_STREAM:
                conn, peer = sock.accept()
                with conn:
                    self._log(address, port, peer[0])
                    conn.setblocking(True)
                    conn.settimeout(2)
                    conn.sendall(f"{address}:{port} from {peer[0]}\n".encode())
            else:
                _, peer = sock.recvfrom(2048)
                self._log(address, port, peer[0])
                sock.sendto(f"{address}:{port} from {peer[0]}\n".encode(), peer)
        except OSError:
            pass

    def _log(self, address: str, port: int, client: str) -> None:
        with self._lock:
            self.seen.append((address, port, client))

    def arrivals(self, address: str, port: int) -> list[str]:
        """Client addresses that reached ``address:port`` so far."""
        with self._lock:
            return [c for a, p, c in self.seen if (a, p) == (address, port)]

    # teardown -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stop_r = self._stop_w = -1
        subprocess.run(
            ["ip", "link", "del", self.host_link], capture_output=True, check=False
        )  # routes go too
        if Path(self.netns_path).exists():
            netns.remove_netns(self.netns_path)
        netns.release_private_mount(str(self._dir))
        shutil.rmtree(self._dir, ignore_errors=True)
