"""API tokens: mint (shown once), list (prefix only), revoke.

Who may mint what:
- anyone may mint a token for *themselves* with a subset of their own token's scopes that expires no
  later than their own token (so an agent hands a narrower, shorter-lived token to a sub-task);
- a tenant admin may mint tokens for any principal of their tenant, with a subset of their own scopes;
- a platform admin (the bootstrap admin) may also mint tokens in other tenants.
``platform.admin`` itself is only ever granted in the ``default`` tenant. A principal that does not
exist yet is created (kind ``service`` unless ``"kind": "person"`` is given).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.access import PLATFORM_ADMIN, TENANT_ADMIN, parse_scopes
from ..domain.errors import InvalidRequest, PermissionDenied, TenantNotFound, TokenNotFound
from ..domain.ids import new_id
from ..domain.principal import Principal
from ..domain.tenancy import (
    DEFAULT_TENANT,
    PRINCIPAL_KINDS,
    TokenRecord,
    parse_principal_name,
    parse_tenant_name,
)
from .auth import TOKEN_PREFIX, is_platform_admin, mint_e2b_secret, mint_secret
from .context import ControlContext
from .requests import reject_unknown
from .terminal import Terminals

MAX_TOKEN_LIFETIME_S = 5 * 366 * 24 * 3600
TOKEN_FORMATS = ("shells", "e2b")


@dataclass(frozen=True)
class TokenRequest:
    tenant: str | None
    principal: str | None
    scopes: frozenset[str]
    expires_in_s: int | None
    kind: str
    format: str = "shells"
    """``shells`` (``shl_…``) or ``e2b`` (``e2b_`` + hex, the form E2B's SDKs accept as an API key)."""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> TokenRequest:
        reject_unknown(body, {"tenant", "principal", "scopes", "expires_in_s", "kind", "format"})
        if "scopes" not in body:
            raise InvalidRequest('\'scopes\' is required, e.g. ["shells.read", "shells.exec"].')
        expires = body.get("expires_in_s")
        if expires is not None and (
            isinstance(expires, bool)
            or not isinstance(expires, int)
            or not 0 < expires <= MAX_TOKEN_LIFETIME_S
        ):
            raise InvalidRequest(
                f"'expires_in_s' must be a whole number of seconds from 1 to {MAX_TOKEN_LIFETIME_S}.",
                {"field": "expires_in_s"},
            )
        kind = body.get("kind", "service")
        if kind not in PRINCIPAL_KINDS:
            raise InvalidRequest(f"'kind' must be one of: {', '.join(PRINCIPAL_KINDS)}.", {"field": "kind"})
        token_format = body.get("format", "shells")
        if token_format not in TOKEN_FORMATS:
            raise InvalidRequest(f"'format' must be one of: {', '.join(TOKEN_FORMATS)}.", {"field": "format"})
        tenant, principal = body.get("tenant"), body.get("principal")
        return cls(
            tenant=None if tenant is None else parse_tenant_name(tenant),
            principal=None if principal is None else parse_principal_name(principal),
            scopes=parse_scopes(body["scopes"]),
            expires_in_s=expires,
            kind=str(kind),
            format=str(token_format),
        )


class Tokens:
    def __init__(self, ctx: ControlContext, terminals: Terminals) -> None:
        self.ctx = ctx
        self.terminals = terminals

    def create(self, principal: Principal, req: TokenRequest) -> tuple[TokenRecord, str]:
        """Mint a token; return its record and the secret (which is never shown again)."""
        store = self.ctx.store
        tenant = req.tenant or principal.tenant
        target = req.principal or principal.id
        if tenant != principal.tenant and not is_platform_admin(principal):
            raise TenantNotFound(f"Tenant '{tenant}' does not exist.", {"tenant": tenant})
        if store.tenancy.get_tenant(tenant) is None:
            raise TenantNotFound(f"Tenant '{tenant}' does not exist.", {"tenant": tenant})
        for_self = tenant == principal.tenant and target == principal.id
        if not for_self and not (principal.has(TENANT_ADMIN) or is_platform_admin(principal)):
            raise PermissionDenied(
                "Only tenant admins mint tokens for other principals; you may mint one for yourself.",
                {"scope": TENANT_ADMIN},
            )
        beyond = sorted(req.scopes - principal.scopes)
        if beyond:
            raise PermissionDenied(
                f"A token can only carry scopes its minter holds; yours lacks: {', '.join(beyond)}.",
                {"scopes": beyond},
            )
        if PLATFORM_ADMIN in req.scopes and tenant != DEFAULT_TENANT:
            raise InvalidRequest(
                f"'{PLATFORM_ADMIN}' can only be given in the '{DEFAULT_TENANT}' tenant.", {"field": "scopes"}
            )
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=req.expires_in_s) if req.expires_in_s else None
        if for_self:
            self._outlives_own(principal, expires_at)
        store.tenancy.ensure_principal(tenant, target, req.kind)
        secret = mint_e2b_secret() if req.format == "e2b" else mint_secret(TOKEN_PREFIX)
        record = TokenRecord(
            id=new_id("tok"),
            tenant=tenant,
            principal=target,
            prefix=secret.prefix,
            scopes=req.scopes,
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
        )
        draft = self.ctx.draft(
            principal,
            None,
            kind="admin",
            action="token.create",
            tenant=tenant,
            target=record.id,
            details={"principal": target, "scopes": sorted(req.scopes), "prefix": record.prefix},
        )
        store.tenancy.add_token(record, secret.hash, draft)
        return record, secret.token

    def list(self, principal: Principal, tenant: str | None = None) -> list[TokenRecord]:
        """Tenant admins see every token of their tenant (a platform admin any tenant's); others their own."""
        if tenant is not None and tenant != principal.tenant:
            if not is_platform_admin(principal) or self.ctx.store.tenancy.get_tenant(tenant) is None:
                raise TenantNotFound(f"Tenant '{tenant}' does not exist.", {"tenant": tenant})
            return self.ctx.store.tenancy.list_tokens(tenant)
        mine = None if principal.has(TENANT_ADMIN) else principal.id
        return self.ctx.store.tenancy.list_tokens(principal.tenant, mine)

    def revoke(self, principal: Principal, token_id: str) -> None:
        """Revoke a token (and end the terminal sessions minted with it). Idempotent."""
        token = self.ctx.store.tenancy.get_token(token_id)
        if token is None or not self._may_manage(principal, token):
            raise TokenNotFound(f"Token '{token_id}' does not exist.", {"id": token_id})
        draft = self.ctx.draft(
            principal,
            None,
            kind="admin",
            action="token.revoke",
            tenant=token.tenant,
            target=token.id,
            details={"principal": token.principal, "prefix": token.prefix},
        )
        ended = self.ctx.store.tenancy.revoke_token(token.id, draft)
        self.terminals.end_sessions(ended, "The API token that minted this terminal credential was revoked.")

    def _outlives_own(self, principal: Principal, expires_at: datetime | None) -> None:
        """A token minted for oneself may not outlive the token that minted it."""
        own = self.ctx.store.tenancy.get_token(principal.token_id) if principal.token_id else None
        if own is None or own.expires_at is None:
            return
        if expires_at is None or expires_at > own.expires_at:
            raise InvalidRequest(
                f"Your token expires at {own.expires_at.isoformat()}; a token you mint for yourself must "
                "expire no later (set 'expires_in_s').",
                {"field": "expires_in_s"},
            )

    @staticmethod
    def _may_manage(principal: Principal, token: TokenRecord) -> bool:
        if is_platform_admin(principal):
            return True
        if token.tenant != principal.tenant:
            return False
        return principal.has(TENANT_ADMIN) or token.principal == principal.id
