"""A webhook receiver on the fake internet: an HTTP server on a socket made inside its network
namespace (so the server reaches it at a public-looking address, never on loopback), recording
every POST with its headers and raw body, answering with the status it is told to, after a delay
it is told to, or not listening at all (``down``)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shells.runtime.host import netns


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def signed_with(self, secret: str) -> bool:
        """Whether the signature header is the HMAC of ``<timestamp>.<body>`` under ``secret``,
        checked the way a receiver must (over the raw body, in constant time)."""
        stamp = self.headers["Shells-Webhook-Timestamp"]
        want = hmac.new(secret.encode(), f"{stamp}.".encode() + self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers["Shells-Webhook-Signature"], f"v1={want}")


class WebhookReceiver:
    def __init__(self, netns_path: str, address: str, port: int) -> None:
        self.netns_path, self.address, self.port = netns_path, address, port
        self.status = 200
        self.delay_s = 0.0
        self.received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Listen (again)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.delay_s:
                    threading.Event().wait(receiver.delay_s)
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        def bound() -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.listen(16)
            return sock

        server = ThreadingHTTPServer((self.address, self.port), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = netns.run_in_netns(self.netns_path, bound)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until ``up``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def bodies(self) -> list[Received]:
        with self._lock:
            return list(self.received)
