"""Who a request on the E2B door acts as.

The control plane takes the caller's key (``X-API-KEY``: any Shells token; ``e2b_`` keys exist for
the SDK's client-side format check). In-sandbox calls carry no key, only the sandbox's
``envdAccessToken`` (``X-Access-Token``), which the door derives from the sandbox id and the id of
the token that created or connected to it: ``<token id>.<HMAC-SHA256(instance secret, sandbox:token id)>``.
So an access token works for one sandbox only, is never stored, and dies with the key it came from
(revoked or expired keys fail the same liveness check as on REST).
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from hashlib import sha256
from pathlib import Path

from ..control.service import Control
from ..domain.errors import Unauthenticated
from ..domain.principal import Principal
from .signing import KnownTokens, Operation

SECRET_BYTES = 32


def load_secret(path: Path) -> bytes:
    """The instance's door secret, made on first use (readable by the server's user only)."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    value = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value.hex())
    return value


class DoorAccess:
    def __init__(self, control: Control, secret: bytes) -> None:
        self.control = control
        self._secret = secret
        self.known = KnownTokens()

    def api_key(self, key: str | None) -> Principal:
        """The principal of an ``X-API-KEY`` (401 if missing or unknown, 429 past its rate)."""
        if not key:
            raise Unauthenticated("Send your Shells token as the E2B API key (E2B_API_KEY / X-API-KEY).")
        return self.control.auth.principal(f"Bearer {key}")

    def mint(self, sandbox: str, principal: Principal) -> str:
        token_id = principal.token_id or ""
        token = f"{token_id}.{self._mac(sandbox, token_id)}"
        self.known.add(sandbox, token)
        return token

    def sandbox_token(self, sandbox: str, presented: str | None) -> Principal:
        """The principal an in-sandbox call acts as, from the sandbox's access token."""
        token_id, _, mac = (presented or "").partition(".")
        if not token_id or not hmac.compare_digest(mac, self._mac(sandbox, token_id)):
            raise Unauthenticated(
                "The sandbox access token (X-Access-Token) is missing or not this sandbox's."
            )
        principal = self.control.auth.principal_of_token(token_id)
        self.known.add(sandbox, f"{token_id}.{mac}")
        return principal

    def signed(
        self,
        path: str,
        operation: Operation,
        user: str,
        presented: str,
        expiration: int | None,
        sandbox: str | None = None,
    ) -> tuple[str, Principal]:
        """The sandbox and principal of a signed file URL (see ``signing``): 401 for a signature of
        no known token, path, operation or user, then for one past its expiration."""
        found = self.known.find(path, operation, user, presented, expiration, sandbox)
        if found is None:
            raise Unauthenticated(
                "Invalid signature: it does not match this path, operation and user for any sandbox."
            )
        if expiration is not None and expiration < time.time():
            raise Unauthenticated("The signature is already expired; ask the SDK for a new URL.")
        name, token = found
        return name, self.control.auth.principal_of_token(token.partition(".")[0])

    def _mac(self, sandbox: str, token_id: str) -> str:
        return hmac.new(self._secret, f"{sandbox}:{token_id}".encode(), sha256).hexdigest()
