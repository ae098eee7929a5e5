"""Persistence of volumes (tenant-owned, outliving shells) and of what each shell mounts: its
bucket mounts (credentials sealed by ``control.secret_box``; the store never sees them in the
clear) and its volume attachments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.errors import VolumeExists
from ..domain.states import ShellState
from .repository import EventDraft, Store, event_row, utcnow
from .tables import Base, ShellRow

HOLDING = (ShellState.CREATING, ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED)
"""States of a shell that holds its volumes (a failed, lost or deleted one never starts again)."""


class VolumeRow(Base):
    __tablename__ = "volumes"
    __table_args__ = (UniqueConstraint("tenant", "live_name", name="uq_volumes_tenant_live_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    live_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The name while the volume exists, NULL once deleted: the row stays for metering, the name is free."""
    size_gib: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many uploads to the object store the volume has had (0: none yet)."""
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The SHA-256 of the packed files of the last upload (``blobs/sha256/<blob>``)."""
    blob_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    durable_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ShellMountRow(Base):
    __tablename__ = "shell_mounts"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(4096))
    read_only: Mapped[bool] = mapped_column(Boolean)
    volume_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    bucket: Mapped[str | None] = mapped_column(String(64), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    prefix: Mapped[str | None] = mapped_column(String(512), nullable=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """A bucket mount's credentials, sealed with the shell's tenant and ``mount:<shell>:<position>``."""


@dataclass(frozen=True)
class VolumeRecord:
    id: str
    tenant: str
    name: str
    size_gib: int
    created_at: datetime
    deleted_at: datetime | None = None
    version: int = 0
    blob: str | None = None
    blob_bytes: int | None = None
    durable_at: datetime | None = None

    def to_public(self, attached: list[dict[str, object]] | None = None) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "size_gib": self.size_gib,
            "created_at": self.created_at.isoformat(),
            "attached": attached or [],
            "durable_at": None if self.durable_at is None else self.durable_at.isoformat(),
            "stored_bytes": self.blob_bytes,
        }


@dataclass(frozen=True)
class MountRow:
    """One row of a shell's mounts as stored: a volume attachment or a bucket mount (sealed)."""

    position: int
    path: str
    read_only: bool
    volume_id: str | None = None
    bucket: str | None = None
    endpoint: str | None = None
    prefix: str | None = None
    sealed: bytes | None = None


def _volume(row: VolumeRow) -> VolumeRecord:
    return VolumeRecord(
        row.id, row.tenant, row.name, row.size_gib, row.created_at, row.deleted_at,
        row.version, row.blob, row.blob_bytes, row.durable_at,
    )  # fmt: skip


class StorageStore:
    """Queries for volumes and shell mounts; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # volumes --------------------------------------------------------------------------------------
    def add_volume(self, rec: VolumeRecord, draft: EventDraft) -> None:
        try:
            with self._store.tx() as s:
                s.add(
                    VolumeRow(
                        id=rec.id,
                        tenant=rec.tenant,
                        name=rec.name,
                        live_name=rec.name,
                        size_gib=rec.size_gib,
                        created_at=rec.created_at,
                    )
                )
                s.add(event_row(draft, rec.created_at))
        except IntegrityError:
            raise VolumeExists(
                f"A volume named {rec.name!r} exists already; choose another name.", {"field": "name"}
            ) from None

    def volume(self, tenant: str, name: str) -> VolumeRecord | None:
        with self._store.tx() as s:
            q = select(VolumeRow).where(VolumeRow.tenant == tenant, VolumeRow.live_name == name)
            row = s.scalars(q).first()
            return _volume(row) if row is not None else None

    def volumes(self, tenant: str | None, *, with_deleted: bool = False) -> list[VolumeRecord]:
        """A tenant's volumes (every tenant's with None); with ``with_deleted`` the deleted ones too."""
        with self._store.tx() as s:
            q = select(VolumeRow).order_by(VolumeRow.tenant, VolumeRow.name, VolumeRow.created_at)
            if tenant is not None:
                q = q.where(VolumeRow.tenant == tenant)
            if not with_deleted:
                q = q.where(VolumeRow.live_name.is_not(None))
            return [_volume(r) for r in s.scalars(q)]

    def volume_names(self, ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        with self._store.tx() as s:
            rows = s.execute(select(VolumeRow.id, VolumeRow.name).where(VolumeRow.id.in_(ids)))
            return {str(vid): str(name) for vid, name in rows.all()}

    def delete_volume(self, volume_id: str, draft: EventDraft) -> None:
        with self._store.tx() as s:
            row = s.get(VolumeRow, volume_id)
            if row is None or row.live_name is None:
                return
            row.live_name = None
            row.deleted_at = utcnow()
            s.add(event_row(draft, row.deleted_at))

    def volume_by_id(self, volume_id: str) -> VolumeRecord | None:
        """A live volume by its id (None once deleted)."""
        with self._store.tx() as s:
            row = s.get(VolumeRow, volume_id)
            return _volume(row) if row is not None and row.live_name is not None else None

    def mark_durable(self, volume_id: str, since: int, blob: str, size: int) -> int | None:
        """Record an upload made from the copy of version ``since``: the new version, or None when
        the volume is gone or another upload got there first (then ``blob`` is not named)."""
        with self._store.tx() as s:
            row = s.get(VolumeRow, volume_id)
            if row is None or row.live_name is None or row.version != since:
                return None
            row.version, row.blob, row.blob_bytes, row.durable_at = since + 1, blob, size, utcnow()
            return row.version

    def blobs_in_use(self) -> set[str]:
        """The blob of every live volume: one a deleted volume named may be removed."""
        with self._store.tx() as s:
            q = select(VolumeRow.blob).where(VolumeRow.blob.is_not(None), VolumeRow.live_name.is_not(None))
            return {str(b) for b in s.scalars(q).all()}

    def holders(self, volume_id: str) -> list[tuple[str, bool]]:
        """(shell id, read-only) of every shell that holds the volume (``HOLDING`` states)."""
        with self._store.tx() as s:
            q = (
                select(ShellMountRow.shell_id, ShellMountRow.read_only)
                .join(ShellRow, ShellRow.id == ShellMountRow.shell_id)
                .where(ShellMountRow.volume_id == volume_id, ShellRow.state.in_([*HOLDING]))
                .order_by(ShellMountRow.shell_id)
            )
            return [(sid, bool(ro)) for sid, ro in s.execute(q)]

    # shells ---------------------------------------------------------------------------------------
    def give(self, shell_id: str, rows: list[MountRow], drafts: list[EventDraft]) -> None:
        """Record a shell's mounts (before it starts) with one audit event each."""
        with self._store.tx() as s:
            now = utcnow()
            for r in rows:
                s.add(
                    ShellMountRow(
                        shell_id=shell_id,
                        position=r.position,
                        path=r.path,
                        read_only=r.read_only,
                        volume_id=r.volume_id,
                        bucket=r.bucket,
                        endpoint=r.endpoint,
                        prefix=r.prefix,
                        sealed=r.sealed,
                    )
                )
            for d in drafts:
                s.add(event_row(d, now))

    def mounts_of(self, shell_id: str) -> list[MountRow]:
        """Read on every create, show and delete of a shell (most have none): plain rows."""
        t = ShellMountRow.__table__
        q = select(
            t.c.position, t.c.path, t.c.read_only, t.c.volume_id, t.c.bucket, t.c.endpoint, t.c.prefix,
            t.c.sealed,
        ).where(t.c.shell_id == shell_id).order_by(t.c.position)  # fmt: skip
        with self._store.read() as conn:
            return [MountRow(*r) for r in conn.execute(q)]
