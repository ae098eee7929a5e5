"""Persistence of tenant secrets (values sealed by ``control.secret_box``; the store never sees one
in the clear) and of which secrets each shell was given, with its placeholders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Integer,
    LargeBinary,
    Select,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.errors import AlreadyExists
from ..domain.secrets import SecretRecord
from .repository import EventDraft, Store, utcnow
from .tables import Base, ShellRow


class SecretRow(Base):
    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_secrets_tenant_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    hosts: Mapped[dict[str, Any]]
    header: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ShellSecretRow(Base):
    __tablename__ = "shell_secrets"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    placeholder: Mapped[str] = mapped_column(String(128))


def _named(tenant: str, name: str) -> Select[SecretRow]:
    return select(SecretRow).where(SecretRow.tenant == tenant, SecretRow.name == name)


def _record(row: SecretRow) -> SecretRecord:
    return SecretRecord(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        hosts=tuple(row.hosts["patterns"]),
        header=row.header,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class SealedSecret:
    """A shell's secret as stored: where it may go, its placeholder, its sealed value."""

    record: SecretRecord
    placeholder: str
    sealed: bytes


class SecretsStore:
    """Queries for secrets; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, rec: SecretRecord, sealed: bytes, draft: EventDraft) -> None:
        """Raises ``AlreadyExists`` when the tenant has a secret of that name (a concurrent create)."""
        try:
            self._add(rec, sealed, draft)
        except IntegrityError:
            raise AlreadyExists(f"A secret named {rec.name!r} exists already.", {"field": "name"}) from None

    def _add(self, rec: SecretRecord, sealed: bytes, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.add(
                SecretRow(
                    id=rec.id,
                    tenant=rec.tenant,
                    name=rec.name,
                    hosts={"patterns": list(rec.hosts)},
                    header=rec.header,
                    sealed=sealed,
                    version=rec.version,
                    created_at=rec.created_at,
                    updated_at=rec.updated_at,
                )
            )
            self._store.record_event(s, draft, rec.created_at)

    def count(self, tenant: str) -> int:
        with self._store.tx() as s:
            return int(
                s.scalar(select(func.count()).select_from(SecretRow).where(SecretRow.tenant == tenant)) or 0
            )

    def get(self, tenant: str, name: str) -> SecretRecord | None:
        with self._store.tx() as s:
            row = s.scalars(_named(tenant, name)).first()
            return _record(row) if row is not None else None

    def list_secrets(self, tenant: str) -> list[SecretRecord]:
        with self._store.tx() as s:
            rows = s.scalars(select(SecretRow).where(SecretRow.tenant == tenant).order_by(SecretRow.name))
            return [_record(r) for r in rows]

    def update(
        self,
        tenant: str,
        name: str,
        *,
        hosts: tuple[str, ...] | None,
        header: str | None,
        set_header: bool,
        sealed: bytes | None,
        draft: EventDraft,
    ) -> SecretRecord | None:
        """Change what is given; a new value (a rotation) bumps ``version``. None if there is no such
        secret. Shells pick the change up at their next request: the proxy reads it per use."""
        with self._store.tx() as s:
            row = s.scalars(_named(tenant, name)).first()
            if row is None:
                return None
            if hosts is not None:
                row.hosts = {"patterns": list(hosts)}
            if set_header:
                row.header = header
            if sealed is not None:
                row.sealed = sealed
                row.version += 1
            row.updated_at = utcnow()
            self._store.record_event(s, draft, row.updated_at)
            s.flush()
            return _record(row)

    def delete(self, tenant: str, name: str, draft: EventDraft) -> bool:
        with self._store.tx() as s:
            gone = s.execute(delete(SecretRow).where(SecretRow.tenant == tenant, SecretRow.name == name))
            if not gone.rowcount:  # type: ignore[attr-defined]
                return False
            self._store.record_event(s, draft, utcnow())
            return True

    # shells ---------------------------------------------------------------------------------------
    def give(self, shell_id: str, placeholders: dict[str, str]) -> None:
        """Record the secrets (name → placeholder) a shell was created with."""
        with self._store.tx() as s:
            for name, placeholder in placeholders.items():
                s.add(ShellSecretRow(shell_id=shell_id, name=name, placeholder=placeholder))

    def copy_to(self, parent_id: str, children: Iterable[str]) -> None:
        """Forks keep their parent's secrets and placeholders (their environment is a copy too)."""
        with self._store.tx() as s:
            rows = s.scalars(select(ShellSecretRow).where(ShellSecretRow.shell_id == parent_id)).all()
            for child in children:
                for r in rows:
                    s.add(ShellSecretRow(shell_id=child, name=r.name, placeholder=r.placeholder))

    def has_secrets(self, shell_id: str) -> bool:
        with self._store.tx() as s:
            return (
                s.scalar(select(ShellSecretRow.name).where(ShellSecretRow.shell_id == shell_id).limit(1))
                is not None
            )

    def sealed_for(self, shell_id: str) -> tuple[str, list[SealedSecret]]:
        """The shell's tenant and the secrets it was given that still exist, with their sealed values."""
        with self._store.tx() as s:
            tenant = s.scalar(select(ShellRow.tenant).where(ShellRow.id == shell_id))
            if tenant is None:
                return "", []
            q = (
                select(SecretRow, ShellSecretRow.placeholder)
                .join(ShellSecretRow, ShellSecretRow.name == SecretRow.name)
                .where(ShellSecretRow.shell_id == shell_id, SecretRow.tenant == tenant)
            )
            return tenant, [
                SealedSecret(_record(row), placeholder, row.sealed) for row, placeholder in s.execute(q)
            ]

    def shells_with_secrets(self) -> list[str]:
        """The ids of every shell that was given secrets."""
        with self._store.tx() as s:
            return list(
                s.scalars(select(ShellSecretRow.shell_id).distinct().order_by(ShellSecretRow.shell_id))
            )

    def forget_shell(self, shell_id: str) -> None:
        with self._store.tx() as s:
            s.execute(delete(ShellSecretRow).where(ShellSecretRow.shell_id == shell_id))
