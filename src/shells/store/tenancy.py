"""Reads and writes of the tenancy records: tenants, principals, API tokens, grants, terminal
credentials and usage counts: the area ``store.tenancy`` of a ``Store`` (same sessions, same rule: a
change and its audit event are one transaction)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.access import Role
from ..domain.errors import AlreadyExists
from ..domain.states import ShellState
from ..domain.tenancy import (
    GrantRecord,
    PrincipalRecord,
    TenantRecord,
    TermCredentialRecord,
    TokenRecord,
)
from .revocations import announce, watch_for
from .tables import Base, ShellRow, SnapshotRow, TokenRow

if TYPE_CHECKING:
    from .repository import EventDraft, Store


class TenantRow(Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    quotas: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class PrincipalRow(Base):
    __tablename__ = "principals"

    tenant: Mapped[str] = mapped_column(String(64), ForeignKey("tenants.name"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class GrantRow(Base):
    __tablename__ = "grants"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[int]
    granted_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class TermCredentialRow(Base):
    __tablename__ = "term_credentials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    shell_id: Mapped[str] = mapped_column(String(64), index=True)
    principal: Mapped[str] = mapped_column(String(128))
    token_id: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    suffix: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _tenant(row: TenantRow) -> TenantRecord:
    return TenantRecord(name=row.name, quotas=dict(row.quotas), created_at=row.created_at)


def _principal(row: PrincipalRow) -> PrincipalRecord:
    return PrincipalRecord(tenant=row.tenant, name=row.name, kind=row.kind, created_at=row.created_at)


def _token(row: TokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        tenant=row.tenant,
        principal=row.principal,
        prefix=row.prefix,
        scopes=frozenset(row.scopes.get("scopes", [])),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _grant(row: GrantRow) -> GrantRecord:
    return GrantRecord(
        shell_id=row.shell_id,
        tenant=row.tenant,
        principal=row.principal,
        role=Role(row.role),
        granted_by=row.granted_by,
        created_at=row.created_at,
    )


def _credential(row: TermCredentialRow) -> TermCredentialRecord:
    return TermCredentialRecord(
        id=row.id,
        tenant=row.tenant,
        shell_id=row.shell_id,
        principal=row.principal,
        token_id=row.token_id,
        suffix=row.suffix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class TenancyStore:
    """The tenancy area of a ``Store`` (``store.tenancy``): its sessions, its rule (a change and its
    audit event are one transaction)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.revocations = watch_for(store.url)
        """Token revocations heard from every process on the record (``store.revocations``): a cache
        of tokens (``control.auth``) keeps an entry only under the generation it was read in."""

    # tenants and principals -------------------------------------------------------------------------
    def ensure_tenant(self, name: str) -> None:
        with self._store.tx() as s:
            if s.get(TenantRow, name) is None:
                s.add(TenantRow(name=name, quotas={}, created_at=_now()))

    def add_tenant(self, tenant: TenantRecord, draft: EventDraft) -> None:
        with self._store.tx() as s:
            if s.get(TenantRow, tenant.name) is not None:
                raise AlreadyExists(f"A tenant named '{tenant.name}' exists; choose another name.")
            s.add(TenantRow(name=tenant.name, quotas=dict(tenant.quotas), created_at=tenant.created_at))
            self._store.record_event(s, draft, tenant.created_at)

    def get_tenant(self, name: str) -> TenantRecord | None:
        with self._store.tx() as s:
            row = s.get(TenantRow, name)
            return None if row is None else _tenant(row)

    def list_tenants(self) -> list[TenantRecord]:
        with self._store.tx() as s:
            return [_tenant(r) for r in s.scalars(select(TenantRow).order_by(TenantRow.name)).all()]

    def set_tenant_quotas(self, name: str, quotas: dict[str, float | int], draft: EventDraft) -> TenantRecord:
        with self._store.tx() as s:
            row = s.get(TenantRow, name)
            assert row is not None, "callers check the tenant first"
            row.quotas = dict(quotas)
            self._store.record_event(s, draft, _now())
            return _tenant(row)

    def ensure_principal(self, tenant: str, name: str, kind: str) -> PrincipalRecord:
        """The principal, created (of ``kind``) if it is new; an existing one keeps its kind."""
        with self._store.tx() as s:
            row = s.get(PrincipalRow, (tenant, name))
            if row is None:
                row = PrincipalRow(tenant=tenant, name=name, kind=kind, created_at=_now())
                s.add(row)
            return _principal(row)

    def get_principal(self, tenant: str, name: str) -> PrincipalRecord | None:
        with self._store.tx() as s:
            row = s.get(PrincipalRow, (tenant, name))
            return None if row is None else _principal(row)

    def list_principals(self, tenant: str) -> list[PrincipalRecord]:
        with self._store.tx() as s:
            q = select(PrincipalRow).where(PrincipalRow.tenant == tenant).order_by(PrincipalRow.name)
            return [_principal(r) for r in s.scalars(q).all()]

    # API tokens -----------------------------------------------------------------------------------
    def add_token(
        self,
        token: TokenRecord,
        token_hash: str,
        draft: EventDraft | None = None,
    ) -> None:
        with self._store.tx() as s:
            s.add(
                TokenRow(
                    id=token.id,
                    tenant=token.tenant,
                    principal=token.principal,
                    token_hash=token_hash,
                    prefix=token.prefix,
                    scopes={"scopes": sorted(token.scopes)},
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                )
            )
            if draft is not None:
                self._store.record_event(s, draft, token.created_at)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._store.tx() as s:
            row = s.scalars(select(TokenRow).where(TokenRow.token_hash == token_hash)).first()
            return None if row is None else _token(row)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._store.tx() as s:
            row = s.get(TokenRow, token_id)
            return None if row is None else _token(row)

    def list_tokens(self, tenant: str, principal: str | None = None) -> list[TokenRecord]:
        with self._store.tx() as s:
            q = select(TokenRow).where(TokenRow.tenant == tenant)
            if principal is not None:
                q = q.where(TokenRow.principal == principal)
            return [_token(r) for r in s.scalars(q.order_by(TokenRow.created_at)).all()]

    def revoke_token(self, token_id: str, draft: EventDraft) -> list[str]:
        """Revoke the token and every terminal credential minted with it; return those credentials."""
        now = _now()
        with self._store.tx() as s:
            row = s.get(TokenRow, token_id)
            assert row is not None, "callers check the token first"
            if row.revoked_at is None:
                row.revoked_at = now
            credentials = list(
                s.scalars(
                    select(TermCredentialRow.id).where(
                        TermCredentialRow.token_id == token_id, TermCredentialRow.revoked_at.is_(None)
                    )
                ).all()
            )
            s.execute(
                update(TermCredentialRow)
                .where(TermCredentialRow.token_id == token_id, TermCredentialRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            self._store.record_event(s, draft, now)
            announce(s, token_id)
        self.revocations.changed()
        return credentials

    def touch_token(self, token_id: str, at: datetime) -> None:
        with self._store.tx() as s:
            s.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=at))

    # grants ---------------------------------------------------------------------------------------
    def put_grant(self, grant: GrantRecord, draft: EventDraft) -> None:
        """Grant a role, replacing the principal's earlier role on that shell."""
        with self._store.tx() as s:
            row = s.get(GrantRow, (grant.shell_id, grant.principal))
            if row is None:
                row = GrantRow(shell_id=grant.shell_id, principal=grant.principal, tenant=grant.tenant)
                s.add(row)
            row.role, row.granted_by, row.created_at = int(grant.role), grant.granted_by, grant.created_at
            self._store.record_event(s, draft, grant.created_at)

    def get_grant(self, shell_id: str, principal: str) -> GrantRecord | None:
        with self._store.tx() as s:
            row = s.get(GrantRow, (shell_id, principal))
            return None if row is None else _grant(row)

    def list_grants(self, shell_id: str) -> list[GrantRecord]:
        with self._store.tx() as s:
            q = select(GrantRow).where(GrantRow.shell_id == shell_id).order_by(GrantRow.principal)
            return [_grant(r) for r in s.scalars(q).all()]

    def delete_grant(self, shell_id: str, principal: str, draft: EventDraft) -> bool:
        with self._store.tx() as s:
            row = s.get(GrantRow, (shell_id, principal))
            if row is None:
                return False
            s.delete(row)
            self._store.record_event(s, draft, _now())
            return True

    def granted_shell_ids(self, tenant: str, principal: str) -> set[str]:
        with self._store.tx() as s:
            q = select(GrantRow.shell_id).where(GrantRow.tenant == tenant, GrantRow.principal == principal)
            return set(s.scalars(q).all())

    # terminal credentials -------------------------------------------------------------------------
    def add_term_credential(self, cred: TermCredentialRecord, token_hash: str, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.add(
                TermCredentialRow(
                    id=cred.id,
                    tenant=cred.tenant,
                    shell_id=cred.shell_id,
                    principal=cred.principal,
                    token_id=cred.token_id,
                    token_hash=token_hash,
                    suffix=cred.suffix,
                    created_at=cred.created_at,
                    expires_at=cred.expires_at,
                )
            )
            self._store.record_event(s, draft, cred.created_at)

    def find_term_credential(self, token_hash: str) -> TermCredentialRecord | None:
        with self._store.tx() as s:
            q = select(TermCredentialRow).where(TermCredentialRow.token_hash == token_hash)
            row = s.scalars(q).first()
            return None if row is None else _credential(row)

    def get_term_credential(self, credential_id: str) -> TermCredentialRecord | None:
        with self._store.tx() as s:
            row = s.get(TermCredentialRow, credential_id)
            return None if row is None else _credential(row)

    def list_term_credentials(self, shell_id: str) -> list[TermCredentialRecord]:
        with self._store.tx() as s:
            q = (
                select(TermCredentialRow)
                .where(TermCredentialRow.shell_id == shell_id)
                .order_by(TermCredentialRow.created_at)
            )
            return [_credential(r) for r in s.scalars(q).all()]

    def revoke_term_credential(self, credential_id: str, draft: EventDraft) -> None:
        now = _now()
        with self._store.tx() as s:
            row = s.get(TermCredentialRow, credential_id)
            assert row is not None, "callers check the credential first"
            if row.revoked_at is None:
                row.revoked_at = now
            self._store.record_event(s, draft, now)

    # usage ----------------------------------------------------------------------------------------
    def shape_counts(self, tenant: str) -> dict[str, int]:
        """How many shells of each shape the tenant holds (every state but deleted counts)."""
        with self._store.tx() as s:
            q = (
                select(ShellRow.shape, func.count())
                .where(
                    ShellRow.tenant == tenant,
                    ShellRow.pooled.is_(False),
                    ShellRow.state != ShellState.DELETED.value,
                )
                .group_by(ShellRow.shape)
            )
            return {shape: int(n) for shape, n in s.execute(q).all()}

    def snapshot_count(self, tenant: str) -> int:
        with self._store.tx() as s:
            q = select(func.count()).where(SnapshotRow.tenant == tenant, SnapshotRow.deleted_at.is_(None))
            return int(s.scalar(q) or 0)
