"""An HTTPS server on "the internet" (a ``FakeInternet``'s netns), with a certificate for a few names
signed by a test CA of its own, that records every request head it reads.

    with FakeInternet() as net, FakeHttps(net) as api:
        api.address        # the instance's ``addresses.https`` (198.51.100.20 in slot 0), port 443
        api.ca_file        # the test CA (what a server under test must trust to verify it)
        api.heads()        # request heads received so far, as bytes
    FakeHttps(net, tls=files)  # a certificate issued beforehand (``test_ca.issue``), not its own

``GET /bytes/N`` answers N bytes (for throughput); anything else answers ``ok``.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from shells.runtime.host import netns
from tests.support.fake_internet import FakeInternet, _ip
from tests.support.test_ca import TlsFiles, issue

NAMES = ("api.fake.test", "other.fake.test")
_CHUNK = 64 * 1024


class FakeHttps:
    def __init__(self, internet: FakeInternet, names: tuple[str, ...] = NAMES, tls: TlsFiles | None = None):
        self.internet, self.address, self.names = internet, internet.addresses.https, names
        self._dir = Path(tempfile.mkdtemp(prefix="shells-fakehttps-", dir="/var/tmp"))
        self._tls = tls
        self.ca_file = tls.ca if tls is not None else self._dir / "ca.pem"  # ``issue`` writes it on entry
        self._heads: list[bytes] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeHttps:
        _ip("addr", "add", f"{self.address}/32", "dev", "lo", netns_path=self.internet.netns_path)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls = self._tls or issue(self._dir, self.names, "fake internet test CA")
        ctx.load_cert_chain(tls.cert, tls.key)

        def bound() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, 443))
            sock.listen(128)
            return sock

        self._sock = netns.run_in_netns(self.internet.netns_path, bound)
        self._thread = threading.Thread(target=self._accept, args=(self._sock, ctx), daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sock is not None:
            self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)
        for path in self._dir.iterdir():
            path.unlink()
        self._dir.rmdir()

    def heads(self) -> list[bytes]:
        with self._lock:
            return list(self._heads)

    def clear(self) -> None:
        with self._lock:
            self._heads.clear()

    # serving --------------------------------------------------------------------------------------
    def _accept(self, sock: socket.socket, ctx: ssl.SSLContext) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn, ctx), daemon=True).start()

    def _answer(self, raw: socket.socket, ctx: ssl.SSLContext) -> None:
        raw.settimeout(20)
        try:
            with ctx.wrap_socket(raw, server_side=True) as conn:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 256 * 1024:
                    chunk = conn.recv(_CHUNK)
                    if not chunk:
                        return
                    head += chunk
                with self._lock:
                    self._heads.append(head.split(b"\r\n\r\n")[0])
                target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
                size = int(target[len(b"/bytes/") :]) if target.startswith(b"/bytes/") else 0
                body_head = f"HTTP/1.1 200 OK\r\nContent-Length: {size or 3}\r\nConnection: close\r\n\r\n"
                conn.sendall(body_head.encode())
                if not size:
                    conn.sendall(b"ok\n")
                block = b"x" * _CHUNK
                while size > 0:
                    conn.sendall(block[: min(size, _CHUNK)])
                    size -= _CHUNK
                while conn.recv(_CHUNK):  # until the client is done: closing with unread input
                    pass  # would reset the connection and lose the answer's end in flight
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            raw.close()
