"""Mutual authentication of the node RPC with one per-cluster shared secret.

Every request, and every WebSocket handshake, carries ``X-Shells-Time`` (Unix seconds),
``X-Shells-Nonce`` (128 random bits) and ``X-Shells-Signature``: HMAC-SHA256 over the method, the
path, the time, the nonce and the SHA-256 of the body (empty for a handshake). The node refuses
(401, or the handshake) a missing or wrong signature, a time outside ``NODE_RPC_WINDOW_S`` of its
clock and a nonce it has seen, which it remembers for twice the window.

Everything after that, in both directions, is frames: one line ``<hex HMAC> <json>``, the HMAC over
the direction, the nonce of the request or handshake, the frame's sequence number and the JSON. So
an answer is bound to the one request or session that asked it (a recorded answer replayed to
another fails), frames cannot be reordered, dropped, reflected or moved between calls, and an
answer ends with an explicit last frame, so a cut connection is never mistaken for a complete
answer. A session (``/v1/session``, calls one after another) numbers its frames over its whole
life. The control plane refuses anything it cannot verify; neither side acts on an unverified byte.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

from ..domain.errors import InvalidRequest
from ..domain.limits import NODE_RPC_MAX_NONCES, NODE_RPC_WINDOW_S

UP = "up"
"""Frames from the control plane to a node."""
DOWN = "down"
"""Frames from a node to the control plane."""
MIN_SECRET_BYTES = 32


class Unauthenticated(Exception):
    """A request or frame whose signature does not verify (or is stale, or replayed)."""


class Overloaded(Exception):
    """The node remembers as many nonces as it may; it refuses until some age out."""


def load_secret(path: Path) -> bytes:
    """The cluster secret in ``path`` (surrounding whitespace ignored), at least 32 bytes."""
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise InvalidRequest(f"Cannot read the cluster secret file {path}: {e.strerror}.") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise InvalidRequest(
            f"The cluster secret in {path} is {len(secret)} bytes; it needs at least {MIN_SECRET_BYTES} "
            "(e.g. `head -c 32 /dev/urandom | base64 > FILE`)."
        )
    return secret


def make_secret(path: Path) -> None:
    """Write a new random cluster secret to ``path`` (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")


class Signer:
    tls: ssl.SSLContext | None = None
    """The control plane's TLS to its nodes (``node.tls``), None for plain HTTP: set once at start."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _mac(self, *parts: str | bytes) -> str:
        h = hmac.new(self._secret, digestmod=hashlib.sha256)
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)
        return h.hexdigest()

    def _now(self) -> float:
        return self._clock()

    # requests -----------------------------------------------------------------------------------
    def sign(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """The headers that authenticate this request (and name its fresh nonce)."""
        stamp = f"{self._now():.3f}"
        nonce = secrets.token_hex(16)
        digest = hashlib.sha256(body).hexdigest()
        return {
            "x-shells-time": stamp,
            "x-shells-nonce": nonce,
            "x-shells-signature": self._mac("request", method.upper(), path, stamp, nonce, digest),
        }

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The request's nonce if it is signed with the secret, fresh and never seen; else
        Unauthenticated (Overloaded when too many nonces are remembered)."""
        stamp = headers.get("x-shells-time", "")
        nonce = headers.get("x-shells-nonce", "")
        signature = headers.get("x-shells-signature", "")
        if not (stamp and len(nonce) == 32 and signature):
            raise Unauthenticated("unsigned request")
        digest = hashlib.sha256(body).hexdigest()
        if not hmac.compare_digest(
            self._mac("request", method.upper(), path, stamp, nonce, digest), signature
        ):
            raise Unauthenticated("bad signature")
        now = self._now()
        try:
            at = float(stamp)
        except ValueError:
            raise Unauthenticated("bad time") from None
        if abs(now - at) > NODE_RPC_WINDOW_S:
            raise Unauthenticated("stale request")
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            raise Unauthenticated("replayed request")
        if len(self._seen) >= NODE_RPC_MAX_NONCES:
            raise Overloaded("too many requests inside the replay window")
        self._seen[nonce] = now + 2 * NODE_RPC_WINDOW_S
        return nonce

    # frames -------------------------------------------------------------------------------------
    def frame(self, direction: str, nonce: str, seq: int, payload: bytes) -> bytes:
        """One signed frame (a line, newline included)."""
        return self._mac(direction, nonce, str(seq), payload).encode() + b" " + payload + b"\n"

    def open(self, direction: str, nonce: str, seq: int, line: bytes) -> bytes:
        """The payload of frame number ``seq`` of this call, or Unauthenticated."""
        mac, sep, payload = line.rstrip(b"\n").partition(b" ")
        if not sep or not hmac.compare_digest(mac, self._mac(direction, nonce, str(seq), payload).encode()):
            raise Unauthenticated("frame does not verify")
        return payload
