"""A stand-in for "the internet" (and a cloud metadata service) inside one network namespace.

Nothing beyond this machine may be reached by tests, so the destinations a shell's policy is tested
against live here: a netns joined to the host by a veth pair over a small transfer link, with the
host routing a block of the documentation ranges (and one link-local address) into it. Servers run
in one thread of the test process, on sockets created inside the netns, at the instance's
:class:`Addresses`:

    a, b (in 198.51.100.0/24), c, d (in 203.0.113.0/24), metadata (in 169.254.0.0/16)
        TCP 53, 80, 443, 8080: send ``b"<address>:<port> from <client address>\\n"`` and close
        UDP 53, 5353: answer each datagram with the same line
        ICMP echo: answered by the kernel
    v6 = 2001:db8::10 (TCP 80 only; the host does not route IPv6 for shells, so nothing should arrive)

Several instances coexist on one host (pytest-xdist workers, two test runs at once): each takes a
free *slot* (an exclusive lock under /run) and derives everything the host sees from it: its server
addresses, routes, transfer link and link name. Slot 0 has the classic addresses (198.51.100.10,
.11, 203.0.113.10, .11 and 169.254.169.254, the metadata service itself); the others have their own
(``metadata`` then is another link-local address, refused by the same rule). So tests name
addresses through the instance (``net.a``), never as literals.

Every connection and datagram is logged in :attr:`FakeInternet.seen` as (server address, port,
client address), so a test can prove a packet did *not* arrive as well as that one did.

Use it as a context manager (``with FakeInternet() as net: ...``); leaving it removes the netns,
the veth pair and the host routes, and frees the slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from shells.runtime.host import netns

SLOTS = 5
"""How many instances one host holds at once: 203.0.113.0/24 has room for five /28 blocks below
.80; on these machines the package registries (Debian, PyPI, npm) resolve to a proxy at
203.0.113.80, and routing it here would cut the host (and every template build running meanwhile)
off from them."""
SLOT_LOCKS = Path("/run/shells-fake-internet")
SERVER_V6 = "2001:db8::10"
TCP_PORTS = (53, 80, 443, 8080)
UDP_PORTS = (53, 5353)


@dataclass(frozen=True)
class Addresses:
    """Everything of one slot that the host's routing table and link list see."""

    slot: int

    def _in(self, block: str, offset: int) -> str:
        return str(ipaddress.IPv4Network(block)[offset])

    @property
    def routed(self) -> tuple[str, str, str]:
        """The host routes into the netns: a /27 of 198.51.100.0/24, a /28 of 203.0.113.0/24 and
        the metadata address."""
        return (f"198.51.100.{32 * self.slot}/27", f"203.0.113.{16 * self.slot}/28", f"{self.metadata}/32")

    @property
    def a(self) -> str:
        return self._in(self.routed[0], 10)

    @property
    def b(self) -> str:
        return self._in(self.routed[0], 11)

    @property
    def https(self) -> str:
        """Free for :class:`~tests.support.fake_https.FakeHttps` (no server of this module on it)."""
        return self._in(self.routed[0], 20)

    @property
    def c(self) -> str:
        return self._in(self.routed[1], 10)

    @property
    def d(self) -> str:
        return self._in(self.routed[1], 11)

    @property
    def metadata(self) -> str:
        return f"169.254.169.{254 - self.slot}"

    @property
    def servers(self) -> tuple[str, ...]:
        return (self.a, self.b, self.c, self.d, self.metadata)

    @property
    def transfer(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"100.127.253.{4 * self.slot}/30")

    @property
    def host_link(self) -> str:
        return f"shfi{self.slot}h"


def _ip(*args: str, netns_path: str | None = None) -> None:
    cmd = ["ip", *args] if netns_path is None else ["nsenter", f"--net={netns_path}", "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def _take_slot() -> tuple[int, int]:
    """The first free slot and the open lock file that holds it (freed when closed, or when the
    process dies)."""
    SLOT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for slot in range(SLOTS):
        fd = os.open(SLOT_LOCKS / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise RuntimeError(f"all {SLOTS} fake internets of this host are in use (locks in {SLOT_LOCKS})")


class FakeInternet:
    def __init__(self) -> None:
        self._slot_fd = -1
        slot, self._slot_fd = _take_slot()
        at = self.addresses = Addresses(slot)
        self.a, self.b, self.c, self.d, self.metadata = at.a, at.b, at.c, at.d, at.metadata
        self.v6 = SERVER_V6
        self.host_address, self.peer_address = at.transfer[1], at.transfer[2]
        self.host_link = at.host_link
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
        self._remove_host_side()  # a holder of this slot that died left them: the slot is ours now
        netns.ensure_private_mount(str(self._dir))
        netns.create_loopback_netns(self.netns_path)
        ns = self.netns_path
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", "fi0", "netns", ns)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("addr", "add", f"{self.peer_address}/30", "dev", "fi0", netns_path=ns)
        _ip("link", "set", "fi0", "up", netns_path=ns)
        _ip("route", "add", "default", "via", str(self.host_address), netns_path=ns)
        for address in self.addresses.servers:
            _ip("addr", "add", f"{address}/32", "dev", "lo", netns_path=ns)
        _ip("-6", "addr", "add", f"{SERVER_V6}/128", "dev", "lo", "nodad", netns_path=ns)
        for dest in self.addresses.routed:
            _ip("route", "add", dest, "via", str(self.peer_address), "dev", self.host_link)
        for address in self.addresses.servers:
            for port in TCP_PORTS:
                self._listen(socket.AF_INET, socket.SOCK_STREAM, address, port)
            for port in UDP_PORTS:
                self._listen(socket.AF_INET, socket.SOCK_DGRAM, address, port)
        self._listen(socket.AF_INET6, socket.SOCK_STREAM, SERVER_V6, 80)
        self._thread = threading.Thread(target=self._serve, name="fake-internet", daemon=True)
        self._thread.start()

    def _remove_host_side(self) -> None:
        """Delete this slot's link; its address and routes go with it."""
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, check=False)

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
        if self._slot_fd >= 0:
            self._remove_host_side()
            if Path(self.netns_path).exists():
                netns.remove_netns(self.netns_path)
            netns.release_private_mount(str(self._dir))
            shutil.rmtree(self._dir, ignore_errors=True)
            os.close(self._slot_fd)  # the slot is free again
            self._slot_fd = -1
