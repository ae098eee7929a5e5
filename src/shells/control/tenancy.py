"""Tenants (platform admins), their limits and usage, principals, and per-shell grants.

Grants: the owner of a shell (its creator) and tenant admins may give another principal of the same
tenant the role ``viewer`` (see it, its events, logs and files) or ``operator`` (also exec, terminal,
file writes and lifecycle actions). Deleting the shell and granting stay with owners and tenant admins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ..domain import access
from ..domain.access import TENANT_ADMIN, parse_role
from ..domain.errors import GrantNotFound, InvalidRequest, PermissionDenied, PrincipalNotFound, TenantNotFound
from ..domain.principal import Principal, Scope
from ..domain.tenancy import (
    GrantRecord,
    Limits,
    PrincipalRecord,
    TenantRecord,
    parse_limit_overrides,
    parse_principal_name,
    parse_tenant_name,
)
from .auth import authorize, is_platform_admin, require
from .context import ControlContext
from .requests import reject_unknown


def _platform_admin(principal: Principal) -> None:
    if not is_platform_admin(principal):
        raise PermissionDenied(
            "Only a platform admin (the bootstrap admin token) manages tenants.",
            {"scope": Scope.PLATFORM_ADMIN},
        )


class Tenancy:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx

    # tenants --------------------------------------------------------------------------------------
    def create_tenant(self, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        _platform_admin(principal)
        reject_unknown(body, {"name", "quotas"})
        record = TenantRecord(
            name=parse_tenant_name(body.get("name")),
            quotas=parse_limit_overrides(body.get("quotas")),
            created_at=datetime.now(UTC),
        )
        draft = self.ctx.draft(
            principal,
            None,
            kind="admin",
            action="tenant.create",
            tenant=record.name,
            target=record.name,
            details={"quotas": record.quotas},
        )
        self.ctx.store.tenancy.add_tenant(record, draft)
        self.ctx.quotas.forget(record.name)
        return self._public(record)

    def list_tenants(self, principal: Principal) -> list[dict[str, Any]]:
        _platform_admin(principal)
        return [self._public(t) for t in self.ctx.store.tenancy.list_tenants()]

    def get_tenant(self, principal: Principal, name: str) -> dict[str, Any]:
        """A tenant's limits and what it uses now: platform admins, and the tenant's own admins."""
        record = self._tenant(principal, name)
        if not is_platform_admin(principal):
            require(principal, TENANT_ADMIN)
        usage = asdict(self.ctx.quotas.shell_usage(name)) | {
            "snapshots": self.ctx.store.tenancy.snapshot_count(name)
        }
        return self._public(record) | {"usage": usage}

    def set_quotas(self, principal: Principal, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a tenant's own limits (the ones not given fall back to the server's defaults)."""
        _platform_admin(principal)
        record = self._tenant(principal, name)
        reject_unknown(body, {"quotas"})
        quotas = parse_limit_overrides(body.get("quotas"))
        draft = self.ctx.draft(
            principal,
            None,
            kind="admin",
            action="tenant.quotas",
            tenant=record.name,
            target=record.name,
            details={"quotas": quotas},
        )
        updated = self.ctx.store.tenancy.set_tenant_quotas(record.name, quotas, draft)
        self.ctx.quotas.forget(record.name)
        return self._public(updated)

    def _tenant(self, principal: Principal, name: str) -> TenantRecord:
        record = self.ctx.store.tenancy.get_tenant(name)
        if record is None or (name != principal.tenant and not is_platform_admin(principal)):
            raise TenantNotFound(f"Tenant '{name}' does not exist.", {"tenant": name})
        return record

    def _public(self, record: TenantRecord) -> dict[str, Any]:
        limits: Limits = self.ctx.quotas.defaults.with_overrides(record.quotas)
        return {
            "name": record.name,
            "quotas": limits.to_public(),
            "overrides": dict(record.quotas),
            "created_at": record.created_at.isoformat(),
        }

    # principals -----------------------------------------------------------------------------------
    def principals(self, principal: Principal) -> list[PrincipalRecord]:
        require(principal, TENANT_ADMIN)
        return self.ctx.store.tenancy.list_principals(principal.tenant)

    # grants ---------------------------------------------------------------------------------------
    def grant(self, principal: Principal, shell_id: str, body: Mapping[str, Any]) -> GrantRecord:
        shell = authorize(self.ctx.store, principal, shell_id, access.SHARE)
        reject_unknown(body, {"principal", "role"})
        grantee = parse_principal_name(body.get("principal"))
        role = parse_role(body.get("role"))
        if self.ctx.store.tenancy.get_principal(shell.tenant, grantee) is None:
            raise PrincipalNotFound(
                f"Principal '{grantee}' does not exist in your tenant; mint a token for it first.",
                {"principal": grantee},
            )
        if grantee == shell.owner:
            raise InvalidRequest(f"'{grantee}' owns this shell already.", {"field": "principal"})
        grant = GrantRecord(
            shell_id=shell.id,
            tenant=shell.tenant,
            principal=grantee,
            role=role,
            granted_by=principal.id,
            created_at=datetime.now(UTC),
        )
        draft = self.ctx.draft(
            principal,
            shell,
            kind="grant",
            action="grant",
            details={"principal": grantee, "role": role.label},
        )
        self.ctx.store.tenancy.put_grant(grant, draft)
        return grant

    def grants(self, principal: Principal, shell_id: str) -> list[GrantRecord]:
        shell = authorize(self.ctx.store, principal, shell_id, access.SHARE)
        return self.ctx.store.tenancy.list_grants(shell.id)

    def revoke_grant(self, principal: Principal, shell_id: str, grantee: str) -> None:
        shell = authorize(self.ctx.store, principal, shell_id, access.SHARE)
        draft = self.ctx.draft(
            principal, shell, kind="grant", action="revoke", details={"principal": grantee}
        )
        if not self.ctx.store.tenancy.delete_grant(shell.id, grantee, draft):
            raise GrantNotFound(f"'{grantee}' holds no role on this shell.", {"principal": grantee})
