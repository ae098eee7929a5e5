"""Persistence of template records: what each template is, who owns it, and who still uses it.

A row exists only for a template whose bits are complete in the host pool: the control layer adds it
after the backend captured the template, and deletes it before the backend deletes the bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.durable import StoredPart
from ..domain.errors import TemplateExists
from ..domain.states import ShellState
from ..domain.templates import ImageInfo, TemplateKind, TemplateMeta, TemplateRecord, TemplateStatus
from .repository import EventDraft, Store, utcnow
from .tables import Base, ShellRow


class TemplateRow(Base):
    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)  # "" = a built-in, usable by everyone
    owner: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    parent: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    env: Mapped[dict[str, Any]]
    workdir: Mapped[str] = mapped_column(Text)
    versions: Mapped[dict[str, Any]]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    has_workspace: Mapped[bool]
    spec: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    image: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    """Where an image template came from and how it runs (``ImageInfo``); None for other kinds."""
    durable_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """When its bits were all in the object store (None: not yet, or a built-in: never)."""
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


def _record(row: TemplateRow) -> TemplateRecord:
    meta = TemplateMeta(
        name=row.name,
        kind=TemplateKind(row.kind),
        parent=row.parent,
        content_hash=row.content_hash,
        env=dict(row.env),
        workdir=row.workdir,
        versions=dict(row.versions),
        size_bytes=row.size_bytes,
        created_at=row.created_at,
        has_workspace=row.has_workspace,
        image=ImageInfo.from_json(row.image),
    )
    return TemplateRecord(
        meta,
        TemplateStatus.READY,
        tenant=row.tenant,
        owner=row.owner,
        durable_at=row.durable_at,
        parts=tuple(StoredPart.from_json(p) for p in row.parts or ()),
    )


class TemplateStore:
    """Queries for template records; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, rec: TemplateRecord, spec: str = "", draft: EventDraft | None = None) -> None:
        """Raises ``TemplateExists`` when a template of that name is recorded (another control
        replica registered the same built-in, or built the same name, at the same moment)."""
        try:
            self._add(rec, spec, draft)
        except IntegrityError:
            name = rec.meta.name
            raise TemplateExists(f"A template named {name!r} exists already.", {"name": name}) from None

    def _add(self, rec: TemplateRecord, spec: str, draft: EventDraft | None) -> None:
        m = rec.meta
        with self._store.tx() as s:
            s.add(
                TemplateRow(
                    name=m.name,
                    tenant=rec.tenant,
                    owner=rec.owner,
                    kind=m.kind.value,
                    parent=m.parent,
                    content_hash=m.content_hash,
                    env=dict(m.env),
                    workdir=m.workdir,
                    versions=dict(m.versions),
                    size_bytes=m.size_bytes,
                    has_workspace=m.has_workspace,
                    spec=spec,
                    created_at=m.created_at or utcnow(),
                    image=m.image.to_json() if m.image else None,
                )
            )
            if draft is not None:
                self._store.record_event(s, draft, utcnow())

    def get(self, name: str) -> TemplateRecord | None:
        with self._store.tx() as s:
            row = s.get(TemplateRow, name)
            return None if row is None else _record(row)

    def list(self, tenant: str | None) -> list[TemplateRecord]:
        """Built-ins and the templates of ``tenant`` (every template for None), by name."""
        with self._store.tx() as s:
            q = select(TemplateRow)
            if tenant is not None:
                q = q.where(TemplateRow.tenant.in_(("", tenant)))
            return [_record(r) for r in s.scalars(q.order_by(TemplateRow.name)).all()]

    def find_by_hash(self, content_hash: str, tenant: str) -> TemplateRecord | None:
        """A template ``tenant`` may use whose content is ``content_hash`` (a finished identical build)."""
        with self._store.tx() as s:
            row = s.scalars(
                select(TemplateRow)
                .where(TemplateRow.content_hash == content_hash, TemplateRow.tenant.in_(("", tenant)))
                .order_by(TemplateRow.created_at)
            ).first()
            return None if row is None else _record(row)

    def first_user(self, name: str) -> str | None:
        """Something that still needs template ``name``: a shell in any state but deleted (pool shells
        aside), or a template built on it. None if nothing does."""
        with self._store.tx() as s:
            shell = s.scalars(
                select(ShellRow.id).where(
                    ShellRow.template == name,
                    ShellRow.state != ShellState.DELETED.value,
                    ShellRow.pooled.is_(False),
                )
            ).first()
            if shell is not None:
                return f"shell {shell}"
            child = s.scalars(select(TemplateRow.name).where(TemplateRow.parent == name)).first()
            return None if child is None else f"template {child}"

    def mark_durable(self, name: str, content_hash: str, parts: Sequence[StoredPart]) -> datetime | None:
        """Record that ``parts`` hold template ``name`` (the one of ``content_hash``: a template
        deleted and made again under the name is another) in the object store; None if it is gone."""
        with self._store.tx() as s:
            row = s.get(TemplateRow, name)
            if row is None or row.content_hash != content_hash:
                return None
            row.parts = [p.to_json() for p in parts]
            row.durable_at = utcnow()
            return row.durable_at

    def blobs_in_use(self) -> set[str]:
        with self._store.tx() as s:
            q = select(TemplateRow.parts).where(TemplateRow.parts.is_not(None))
            return {str(p["sha256"]) for parts in s.scalars(q).all() for p in parts or ()}

    def delete(self, name: str, draft: EventDraft | None = None) -> None:
        with self._store.tx() as s:
            row = s.get(TemplateRow, name)
            if row is not None:
                s.delete(row)
            if draft is not None:
                self._store.record_event(s, draft, utcnow())
