"""Authentication (token → principal) and authorisation (may this principal do this?), in one place.

Every door calls ``Authenticator.principal``; every use case calls ``require`` (a scope) or
``authorize`` (a scope plus a role on one shell). Another tenant's shell, and a shell the caller holds
no role on, is answered exactly like one that does not exist.

Tokens are ``shl_<8 chars>_<43 chars>``: 256 random bits after a visible prefix that listings show.
Only a SHA-256 of the whole token is stored. A slow password hash (bcrypt, argon2) defends guessable
secrets against offline guessing; a 256-bit random secret cannot be guessed, so a fast hash loses
nothing and keeps lookups to one indexed read. A stolen database yields no usable token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..domain.access import AGENT_INVOKE, PLATFORM_ADMIN, TENANT_ADMIN, Permission, Role
from ..domain.errors import (
    CredentialExpired,
    CredentialRevoked,
    PermissionDenied,
    RateLimited,
    ShellNotFound,
    SnapshotNotFound,
    Unauthenticated,
)
from ..domain.ids import new_id
from ..domain.principal import ADMIN_SCOPES, Principal, Scope
from ..domain.shell import ShellRecord, SnapshotRecord
from ..domain.tenancy import DEFAULT_TENANT, TokenRecord
from ..store.repository import Store
from .quotas import Quotas
from .ratelimit import RateLimiter
from .request_scope import current_request, note_principal

log = logging.getLogger(__name__)

TOKEN_PREFIX = "shl_"
TOUCH_INTERVAL_S = 60.0
"""``last_used_at`` is written at most this often per token, so a request costs no extra write."""
TOKEN_CACHE_S = 1.0
"""How long a token read from the store answers for it: a third of an exec's CPU in the server was
this lookup. A revocation anywhere drops it at once: through this process, or announced by another
one on the same PostgreSQL record (``store.revocations``: an entry is kept only under the revocation
generation it was read in, and nothing is cached while a notice may be unheard). On SQLite another
process's revocation takes effect here within this time. Expiry and the rate limit are checked on
every request, cached or not."""
TOKEN_CACHE_MAX = 4096
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class Secret:
    """A freshly minted secret: shown once, stored only as ``hash``."""

    token: str
    hash: str
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_secret(kind: str) -> Secret:
    """``<kind><8 visible chars>_<256 random bits>``, its hash, and its visible prefix."""
    prefix = kind + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    return Secret(token=token, hash=hash_token(token), prefix=prefix)


E2B_KEY_PREFIX = "e2b_"
"""Tokens in E2B's key form (``e2b_`` + hex), for the E2B door (docs/e2b.md): the SDK checks the
form before it sends anything."""


def mint_e2b_secret() -> Secret:
    """An E2B-form key (``e2b_`` + 256 random bits in hex), its hash, and its visible prefix."""
    token = E2B_KEY_PREFIX + secrets.token_hex(32)
    return Secret(token=token, hash=hash_token(token), prefix=token[:12])


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated(
            "Send 'Authorization: Bearer <token>'; the admin token is in <data-dir>/admin-token."
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Use the Bearer scheme: 'Authorization: Bearer <token>'.")
    return token


def check_alive(token: TokenRecord | None, now: datetime) -> TokenRecord:
    if token is None:
        raise Unauthenticated("The token is not known to this server.")
    if token.revoked_at is not None:
        raise CredentialRevoked("The token was revoked; ask for a new one.")
    if token.expires_at is not None and token.expires_at <= now:
        raise CredentialExpired("The token has expired; ask for a new one.")
    return token


class Authenticator:
    def __init__(self, store: Store, quotas: Quotas) -> None:
        self.store = store
        self.quotas = quotas
        self.rates = RateLimiter()
        self._touched: dict[str, float] = {}
        self._tokens: dict[str, tuple[float, TokenRecord]] = {}
        self._generation: int | None = None
        """The revocation generation the cached tokens were read in."""

    def principal(self, authorization: str | None) -> Principal:
        """Turn an ``Authorization: Bearer <token>`` header value into a principal, or raise 401/429."""
        now = datetime.now(UTC)
        return self._admit(check_alive(self._find_token(hash_token(bearer(authorization))), now), now)

    def principal_of_token(self, token_id: str) -> Principal:
        """The principal of token ``token_id`` for a credential derived from it (the E2B door's
        sandbox access tokens), with the same liveness check and rate limit as the token itself."""
        now = datetime.now(UTC)
        return self._admit(check_alive(self.store.tenancy.get_token(token_id), now), now)

    def _admit(self, token: TokenRecord, now: datetime) -> Principal:
        limits = self.quotas.limits(token.tenant)
        wait = self.rates.take(token.id, limits.requests_per_s, limits.burst)
        if wait:
            log.info("token %s rate limited", token.prefix)
            raise RateLimited(
                f"This token may make {limits.requests_per_s:g} requests per second (bursts of "
                f"{limits.burst}); retry in {wait:.2f} s.",
                {
                    "limit": "requests_per_s",
                    "value": limits.requests_per_s,
                    "burst": limits.burst,
                    "retry_after_s": round(wait, 3),
                },
            )
        self._touch(token.id, now)
        principal = Principal(id=token.principal, tenant=token.tenant, scopes=token.scopes, token_id=token.id)
        note_principal(principal)
        request = current_request()
        if request is not None and request.door == "mcp":
            # Agents act through the MCP door only with this entitlement, on top of each tool's own.
            require(principal, AGENT_INVOKE)
        return principal

    def _find_token(self, token_hash: str) -> TokenRecord | None:
        clock = time.monotonic()
        generation = self.store.tenancy.revocations.current()  # before the read: it may change meanwhile
        if generation != self._generation or len(self._tokens) >= TOKEN_CACHE_MAX:
            self._tokens.clear()
            self._generation = generation
        cached = self._tokens.get(token_hash)
        if generation is not None and cached is not None and clock - cached[0] < TOKEN_CACHE_S:
            return cached[1]
        token = self.store.tenancy.find_token(token_hash)
        if token is None or generation is None:
            self._tokens.pop(token_hash, None)
        else:
            self._tokens[token_hash] = (clock, token)
        return token

    def _touch(self, token_id: str, now: datetime) -> None:
        clock = time.monotonic()
        last = self._touched.get(token_id)
        if last is None or clock - last >= TOUCH_INTERVAL_S:
            self._touched[token_id] = clock
            self.store.tenancy.touch_token(token_id, now)

    def ensure_admin_token(self, path: Path) -> str:
        """On first start, mint the bootstrap admin token (tenant ``default``, principal ``admin``, every
        scope including platform admin) and write it to ``path`` (mode 0600). A start finding that
        token revoked mints a new one: whoever can read the data dir can always get back in."""
        self.store.tenancy.ensure_tenant(DEFAULT_TENANT)
        self.store.tenancy.ensure_principal(DEFAULT_TENANT, "admin", "person")
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            known = self.store.tenancy.find_token(hash_token(token))
            if known is not None and known.revoked_at is None:
                return token
        secret = mint_secret(TOKEN_PREFIX)
        self.store.tenancy.add_token(
            TokenRecord(
                id=new_id("tok"),
                tenant=DEFAULT_TENANT,
                principal="admin",
                prefix=secret.prefix,
                scopes=ADMIN_SCOPES,
                created_at=datetime.now(UTC),
                expires_at=None,
                revoked_at=None,
            ),
            secret.hash,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secret.token + "\n")
        tmp.replace(path)
        return secret.token


# authorisation ------------------------------------------------------------------------------------


def require(principal: Principal, scope: Scope) -> None:
    if not principal.has(scope):
        raise PermissionDenied(f"This token lacks the '{scope}' entitlement.", {"scope": scope})


def is_platform_admin(principal: Principal) -> bool:
    return principal.has(PLATFORM_ADMIN) and principal.tenant == DEFAULT_TENANT


def role_on(store: Store, principal: Principal, shell: ShellRecord) -> Role | None:
    """The principal's role on a shell of any state; None for another tenant's or a pool shell."""
    if shell.pooled or shell.tenant != principal.tenant:
        return None
    if shell.owner == principal.id or principal.has(TENANT_ADMIN):
        return Role.OWNER
    grant = store.tenancy.get_grant(shell.id, principal.id)
    return grant.role if grant is not None else None


def authorize(store: Store, principal: Principal, shell_id: str, permission: Permission) -> ShellRecord:
    """The one check before anything touches a shell: scope (403), visibility (404), role (403)."""
    require(principal, permission.scope)
    shell = store.get_shell(shell_id)
    role = None if shell is None or shell.state == "deleted" else role_on(store, principal, shell)
    if shell is None or role is None:
        raise ShellNotFound(f"Shell '{shell_id}' does not exist (or was deleted).", {"id": shell_id})
    if role < permission.role:
        raise PermissionDenied(
            f"Your role on this shell is {role.label}; '{permission.name}' needs {permission.role.label}. "
            "Ask its owner or a tenant admin for a grant.",
            {"role": role.label, "needs": permission.role.label},
        )
    return shell


def visible_shells(store: Store, principal: Principal) -> list[ShellRecord]:
    """The shells of the caller's tenant the caller holds a role on (all of them for tenant admins)."""
    shells = store.list_shells(principal.tenant)
    if principal.has(TENANT_ADMIN):
        return shells
    granted = store.tenancy.granted_shell_ids(principal.tenant, principal.id)
    return [s for s in shells if s.owner == principal.id or s.id in granted]


def visible_snapshots(store: Store, principal: Principal, shell_id: str | None) -> list[SnapshotRecord]:
    """Snapshots of shells (deleted ones too) the caller holds a role on."""
    snaps = store.list_snapshots(principal.tenant, shell_id)
    if principal.has(TENANT_ADMIN):
        return snaps
    granted = store.tenancy.granted_shell_ids(principal.tenant, principal.id)
    owned = {
        s.id for s in store.list_shells(principal.tenant, include_deleted=True) if s.owner == principal.id
    }
    return [s for s in snaps if s.shell_id in owned or s.shell_id in granted]


def find_snapshot(store: Store, principal: Principal, snapshot_id: str) -> SnapshotRecord:
    snap = store.get_snapshot(snapshot_id)
    source = store.get_shell(snap.shell_id) if snap is not None else None
    if snap is None or source is None or role_on(store, principal, source) is None:
        raise SnapshotNotFound(f"Snapshot '{snapshot_id}' does not exist.", {"id": snapshot_id})
    return snap
