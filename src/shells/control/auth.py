"""Authentication (token → principal) and authorisation (may this principal do this?), in one place.

Every door calls ``Authenticator.principal`` and every service method calls ``require``; a shell of
another tenant is answered exactly like one that does not exist.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from ..domain.errors import PermissionDenied, ShellNotFound, Unauthenticated
from ..domain.ids import new_id
from ..domain.principal import ADMIN_SCOPES, Principal
from ..domain.shell import ShellRecord
from ..store.repository import Store

TOKEN_PREFIX = "shl_"
DEFAULT_TENANT = "default"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store

    def principal(self, authorization: str | None) -> Principal:
        """Turn an ``Authorization: Bearer <token>`` header value into a principal, or raise 401."""
        if not authorization:
            raise Unauthenticated(
                "Send 'Authorization: Bearer <token>'; the admin token is in <data-dir>/admin-token."
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Use the Bearer scheme: 'Authorization: Bearer <token>'.")
        rec = self.store.find_token(hash_token(token))
        if rec is None or not hmac.compare_digest(rec.prefix, token[: len(rec.prefix)]):
            raise Unauthenticated("The token is not known to this server.")
        if rec.revoked_at is not None:
            raise Unauthenticated("The token was revoked; ask for a new one.")
        if rec.expires_at is not None and rec.expires_at <= datetime.now(UTC):
            raise Unauthenticated("The token has expired; ask for a new one.")
        return Principal(id=rec.principal, tenant=rec.tenant, scopes=rec.scopes, token_id=rec.id)

    def ensure_admin_token(self, path: Path) -> str:
        """On first start, mint the bootstrap admin token and write it to ``path`` (mode 0600)."""
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if self.store.find_token(hash_token(token)) is not None:
                return token
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.add_token(
            token_id=new_id("tok"),
            tenant=DEFAULT_TENANT,
            principal="admin",
            token_hash=hash_token(token),
            prefix=token[:10],
            scopes=ADMIN_SCOPES,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        tmp.replace(path)
        return token


def require(principal: Principal, scope: str) -> None:
    if not principal.has(scope):
        raise PermissionDenied(f"This token lacks the '{scope}' entitlement.", {"scope": scope})


def visible(principal: Principal, shell: ShellRecord | None, shell_id: str) -> ShellRecord:
    """The shell if the principal may see it; otherwise exactly the error of a missing shell."""
    if shell is None or shell.pooled or shell.tenant != principal.tenant or shell.state == "deleted":
        raise ShellNotFound(f"Shell '{shell_id}' does not exist (or was deleted).", {"id": shell_id})
    return shell
