"""Who may do what: tenants, API tokens, principals (``client.tenants`` ...), a shell's grants and
terminal credentials (``shell.grants``, ``shell.terminals``). See docs/security.md for the rules."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from decimal import Decimal

from ..models import (
    BillingTerms,
    Grant,
    NewToken,
    PrincipalInfo,
    Tenant,
    TermCredential,
    TermCredentialInfo,
    Token,
    from_wire,
)
from ..wire import UNSET, Json, Unset
from .http import AsyncHTTP


class AsyncTenants:
    """Tenants and their limits (``client.tenants``): platform admins manage them; a tenant's own
    admins may read theirs."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(self, name: str, *, quotas: Mapping[str, float] | None = None) -> Tenant:
        """Create a tenant. ``quotas`` overrides the server's defaults: ``max_shells``, ``max_vcpus``,
        ``max_memory_mib``, ``max_snapshots``, ``requests_per_s``, ``burst``.

        Raises:
            PermissionDenied: only a platform admin creates tenants.
            InvalidRequest: a bad name or an unknown quota.
            AlreadyExists: the name is taken.
        """
        body: Json = {"name": name, "quotas": dict(quotas or {})}
        return from_wire(Tenant, await self._http.call("POST", "/v1/tenants", body=body))

    async def list(self) -> builtins.list[Tenant]:
        """Every tenant (platform admins)."""
        answer = await self._http.call("GET", "/v1/tenants")
        return [from_wire(Tenant, t) for t in answer["tenants"]]

    async def get(self, name: str) -> Tenant:
        """A tenant's limits and what it holds now (``usage``).

        Raises:
            TenantNotFound: there is no such tenant, or it is not yours.
        """
        return from_wire(Tenant, await self._http.call("GET", f"/v1/tenants/{name}"))

    async def set_quotas(self, name: str, quotas: Mapping[str, float]) -> Tenant:
        """Replace a tenant's own limits; those not given fall back to the server's defaults.

        Raises:
            PermissionDenied: only a platform admin changes limits.
            TenantNotFound: there is no such tenant.
        """
        body: Json = {"quotas": dict(quotas)}
        return from_wire(Tenant, await self._http.call("PATCH", f"/v1/tenants/{name}", body=body))

    async def billing(self, name: str) -> BillingTerms:
        """The tenant's month so far: cost, free tier, what is charged, its budget cap.

        Raises:
            TenantNotFound: there is no such tenant, or it is not yours.
            PermissionDenied: only tenant admins (and platform admins) read it.
        """
        return BillingTerms.parse(await self._http.call("GET", f"/v1/tenants/{name}/billing"))

    async def set_billing(
        self,
        name: str,
        *,
        budget_usd: Decimal | float | str | Unset | None = UNSET,
        free_tier_usd: Decimal | float | str | Unset | None = UNSET,
    ) -> BillingTerms:
        """Set the tenant's monthly budget cap (tenant admins; ``None`` removes it) or its free tier
        (platform admins; ``None`` returns to the server's default). What is not given is kept.

        Raises:
            PermissionDenied: a tenant admin setting the free tier, or a member setting anything.
            InvalidRequest: a negative or malformed amount.
        """
        body: Json = {}
        for key, value in (("budget_usd", budget_usd), ("free_tier_usd", free_tier_usd)):
            if not isinstance(value, Unset):
                body[key] = None if value is None else str(value)
        return BillingTerms.parse(await self._http.call("PUT", f"/v1/tenants/{name}/billing", body=body))


class AsyncTokens:
    """API tokens (``client.tokens``). Anyone mints narrower, shorter-lived tokens for themselves;
    tenant admins mint for any principal of their tenant."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def create(
        self,
        scopes: Sequence[str],
        *,
        tenant: str | None = None,
        principal: str | None = None,
        expires_in_s: int | None = None,
        kind: str | None = None,
        e2b: bool = False,
    ) -> NewToken:
        """Mint a token with ``scopes`` (``["shells.read", "shells.exec"]``) for ``principal`` of
        ``tenant`` (yourself when not given); ``kind`` (``person`` or ``service``) names a new
        principal's kind. The secret is ``result.token``, shown only now. With ``e2b`` it has E2B's
        key form (``e2b_`` + hex) for E2B's SDKs on the E2B door (docs/e2b.md).

        Raises:
            InvalidRequest: an unknown scope, or a bad name or lifetime.
            PermissionDenied: a scope you lack, or a principal you may not mint for.
            TenantNotFound: there is no such tenant, or it is not yours.
        """
        body: Json = {"scopes": list(scopes)}
        extra = {"tenant": tenant, "principal": principal, "expires_in_s": expires_in_s, "kind": kind}
        body |= {k: v for k, v in extra.items() if v is not None}
        if e2b:
            body["format"] = "e2b"
        return NewToken.parse(await self._http.call("POST", "/v1/tokens", body=body))

    async def list(self, *, tenant: str | None = None) -> builtins.list[Token]:
        """The tokens you may see: your own, or every token of your tenant for tenant admins."""
        params = {"tenant": tenant} if tenant else {}
        answer = await self._http.call("GET", "/v1/tokens", params=params)
        return [Token.parse(t) for t in answer["tokens"]]

    async def revoke(self, token_id: str) -> None:
        """Revoke a token at once (the terminal credentials minted with it too).

        Raises:
            TokenNotFound: there is no such token, or it is not one you may revoke.
        """
        await self._http.call("DELETE", f"/v1/tokens/{token_id}")


class AsyncPrincipals:
    """The principals of your tenant (``client.principals``; tenant admins)."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def list(self) -> builtins.list[PrincipalInfo]:
        answer = await self._http.call("GET", "/v1/principals")
        return [from_wire(PrincipalInfo, p) for p in answer["principals"]]


class AsyncGrants:
    """Roles of other principals on one shell (``shell.grants``); its owner and tenant admins grant."""

    def __init__(self, http: AsyncHTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/grants"

    async def add(self, principal: str, role: str) -> Grant:
        """Give ``principal`` (of your tenant) the role ``viewer`` or ``operator`` on the shell.

        Raises:
            PrincipalNotFound: there is no such principal in your tenant.
            PermissionDenied: you are not the shell's owner or a tenant admin.
        """
        body: Json = {"principal": principal, "role": role}
        return from_wire(Grant, await self._http.call("POST", self._path, body=body))

    async def list(self) -> builtins.list[Grant]:
        answer = await self._http.call("GET", self._path)
        return [from_wire(Grant, g) for g in answer["grants"]]

    async def revoke(self, principal: str) -> None:
        """Take ``principal``'s role on the shell away.

        Raises:
            GrantNotFound: the principal holds no role on the shell.
        """
        await self._http.call("DELETE", f"{self._path}/{principal}")


class AsyncTerminals:
    """Credentials for one shell's terminal (``shell.terminals``)."""

    def __init__(self, http: AsyncHTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/term"

    async def create(self, ttl_s: int | None = None) -> TermCredential:
        """A credential for the shell's terminal (a WebSocket at ``credential.url``), valid for
        ``ttl_s`` seconds (5 minutes when not given, 15 at most).

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell is not running.
            PermissionDenied: your role on the shell is below operator.
        """
        body: Json = {} if ttl_s is None else {"ttl_s": ttl_s}
        return from_wire(TermCredential, await self._http.call("POST", self._path, body=body))

    async def list(self) -> builtins.list[TermCredentialInfo]:
        """Your credentials for the shell (everyone's for its owner and tenant admins), masked."""
        answer = await self._http.call("GET", self._path)
        return [from_wire(TermCredentialInfo, c) for c in answer["credentials"]]

    async def revoke(self, credential_id: str) -> None:
        """Revoke a credential; a session attached with it ends at once.

        Raises:
            CredentialNotFound: there is no such credential of yours for this shell.
        """
        await self._http.call("DELETE", f"{self._path}/{credential_id}")
