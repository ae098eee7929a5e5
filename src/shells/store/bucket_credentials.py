"""Persistence of a tenant's named bucket credentials: the key id in the clear (it is shown), the
secret sealed by ``control.secret_box`` (the store never sees it in the clear)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.errors import AlreadyExists
from .repository import EventDraft, Store, event_row, utcnow
from .tables import Base


class BucketCredentialRow(Base):
    __tablename__ = "bucket_credentials"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_bucket_credentials_tenant_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    access_key_id: Mapped[str] = mapped_column(String(256))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """The secret access key, sealed with the tenant and ``bucket-credentials:<name>``."""
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class BucketCredentialRecord:
    id: str
    tenant: str
    name: str
    access_key_id: str
    created_at: datetime

    def to_public(self) -> dict[str, object]:
        """What every answer shows: never the secret."""
        return {
            "id": self.id,
            "name": self.name,
            "access_key_id": self.access_key_id,
            "created_at": self.created_at.isoformat(),
        }


def _record(row: BucketCredentialRow) -> BucketCredentialRecord:
    return BucketCredentialRecord(row.id, row.tenant, row.name, row.access_key_id, row.created_at)


class BucketCredentialsStore:
    """Queries for named bucket credentials; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, rec: BucketCredentialRecord, sealed: bytes, draft: EventDraft) -> None:
        """Raises ``AlreadyExists`` when the tenant has credentials of that name (a concurrent create)."""
        try:
            with self._store.tx() as s:
                s.add(
                    BucketCredentialRow(
                        id=rec.id,
                        tenant=rec.tenant,
                        name=rec.name,
                        access_key_id=rec.access_key_id,
                        sealed=sealed,
                        created_at=rec.created_at,
                    )
                )
                s.add(event_row(draft, rec.created_at))
        except IntegrityError:
            raise AlreadyExists(
                f"Bucket credentials named {rec.name!r} exist already; delete them first to replace them.",
                {"field": "name"},
            ) from None

    def count(self, tenant: str) -> int:
        with self._store.tx() as s:
            q = (
                select(func.count())
                .select_from(BucketCredentialRow)
                .where(BucketCredentialRow.tenant == tenant)
            )
            return int(s.scalar(q) or 0)

    def list(self, tenant: str) -> list[BucketCredentialRecord]:
        with self._store.tx() as s:
            q = (
                select(BucketCredentialRow)
                .where(BucketCredentialRow.tenant == tenant)
                .order_by(BucketCredentialRow.name)
            )
            return [_record(r) for r in s.scalars(q)]

    def get(self, tenant: str, name: str) -> tuple[BucketCredentialRecord, bytes] | None:
        """The record and its sealed secret."""
        with self._store.tx() as s:
            q = select(BucketCredentialRow).where(
                BucketCredentialRow.tenant == tenant, BucketCredentialRow.name == name
            )
            row = s.scalars(q).first()
            return (_record(row), row.sealed) if row is not None else None

    def delete(self, tenant: str, name: str, draft: EventDraft) -> bool:
        with self._store.tx() as s:
            q = select(BucketCredentialRow).where(
                BucketCredentialRow.tenant == tenant, BucketCredentialRow.name == name
            )
            row = s.scalars(q).first()
            if row is None:
                return False
            s.delete(row)
            s.add(event_row(draft, utcnow()))
            return True
