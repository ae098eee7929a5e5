"""Probes that run inside a network namespace: connect, send, ping, serve. For dataplane tests.

Each probe runs in a short-lived thread that has joined the netns (``setns`` moves only that
thread) and returns a plain result: the bytes a server sent, or the errno the attempt failed with,
or ``"timeout"``. Probes use short timeouts, so a policy that refuses answers in milliseconds and
one that silently drops shows up as ``"timeout"``.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from shells.runtime.host.netns import run_in_netns

T = TypeVar("T")
Outcome = bytes | int | str


def answered(outcome: Outcome, prefix: bytes) -> bool:
    """Whether a probe got an answer (bytes) that starts with ``prefix`` (not an errno or a timeout)."""
    return isinstance(outcome, bytes) and outcome.startswith(prefix)


def inside(netns_path: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a thread that joined the netns at ``netns_path``."""
    return run_in_netns(netns_path, action)


def tcp(netns_path: str, address: str, port: int, timeout: float = 2.0) -> Outcome:
    """Connect and read the first line: the bytes, an errno, or "timeout"."""

    def attempt() -> Outcome:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect((address, port))
                return sock.recv(200)
            except TimeoutError:
                return "timeout"
            except OSError as exc:
                return exc.errno or -1

    return inside(netns_path, attempt)


def udp(netns_path: str, address: str, port: int, timeout: float = 2.0, source: str | None = None) -> Outcome:
    """Send one datagram (from ``source`` if given) and wait for an answer."""

    def attempt() -> Outcome:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                if source is not None:
                    sock.bind((source, 0))
                sock.connect((address, port))
                sock.send(b"hello")
                return sock.recv(200)
            except TimeoutError:
                return "timeout"
            except OSError as exc:
                return exc.errno or -1

    return inside(netns_path, attempt)


def ping(netns_path: str, address: str, timeout: float = 2.0) -> Outcome:
    """One ICMP echo over a raw socket: b"pong", an errno, or "timeout"."""

    def attempt() -> Outcome:
        ident = os.getpid() & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        payload = b"shells-probe"
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(packet, (address, 0))
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    data, peer = sock.recvfrom(1500)
                    icmp = data[(data[0] & 0x0F) * 4 :]
                    if icmp[0] == 0 and peer[0] == address:
                        return b"pong"
                    if icmp[0] == 3:  # destination unreachable (the host's refusal)
                        return f"unreachable/{icmp[1]}"
                return "timeout"
            except TimeoutError:
                return "timeout"
            except OSError as exc:
                return exc.errno or -1

    return inside(netns_path, attempt)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


class Listener:
    """A TCP server inside a netns that answers every connection with ``b"<name> from <peer>\\n"``."""

    def __init__(self, netns_path: str, address: str, port: int, name: str) -> None:
        self.name = name
        self.sock = inside(netns_path, lambda: _bound(address, port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(f"{self.name} from {peer[0]}\n".encode())

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


def _bound(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    return sock
