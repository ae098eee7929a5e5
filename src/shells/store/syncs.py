"""The record of workspace syncs: one row per shell that mirrors its /workspace to a bucket, the
user's secret key sealed with the instance's key (``control.secret_box``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from .repository import Store
from .tables import Base


class ShellSyncRow(Base):
    __tablename__ = "shell_syncs"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(512))
    bucket: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(512))
    region: Mapped[str] = mapped_column(String(64))
    access_key_id: Mapped[str] = mapped_column(String(256))
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    last_synced_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SyncStore:
    """Queries for workspace syncs; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, row: ShellSyncRow) -> None:
        with self._store.tx() as s:
            s.add(row)

    def get(self, shell_id: str) -> ShellSyncRow | None:
        with self._store.tx() as s:
            row = s.get(ShellSyncRow, shell_id)
            if row is not None:
                s.expunge(row)
            return row

    def all(self) -> list[ShellSyncRow]:
        with self._store.tx() as s:
            rows = list(s.scalars(select(ShellSyncRow)).all())
            for row in rows:
                s.expunge(row)
            return rows

    def note(
        self, shell_id: str, synced_at: datetime | None, error: str | None, error_at: datetime | None
    ) -> None:
        """Record a pass's outcome (the API shows it after a restart too)."""
        with self._store.tx() as s:
            row = s.get(ShellSyncRow, shell_id)
            if row is not None:
                if synced_at is not None:
                    row.last_synced_at = synced_at
                row.last_error, row.last_error_at = error, error_at

    def remove(self, shell_id: str) -> None:
        with self._store.tx() as s:
            row = s.get(ShellSyncRow, shell_id)
            if row is not None:
                s.delete(row)
