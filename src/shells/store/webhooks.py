"""Persistence of webhooks and their deliveries (the outbox the dispatcher works through)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.webhooks import DeliveryRecord, WebhookRecord
from .repository import Store
from .tables import Base

DUE_SCAN = 5000
"""Pending deliveries looked at per pass, oldest first (every shell's oldest is among them)."""


class WebhookRow(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[dict[str, Any]]
    """``{"names": [...]}``: the webhook events it receives."""
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """The signing secret, sealed (``WebhookRecord.sealed``); never stored in the clear."""
    cursor: Mapped[int] = mapped_column(Integer)
    """The id of the last audit event already turned into deliveries (or skipped)."""
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))


class DeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(64), ForeignKey("webhooks.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    shell_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_at: Mapped[datetime]
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


def _webhook(row: WebhookRow) -> WebhookRecord:
    return WebhookRecord(
        id=row.id,
        tenant=row.tenant,
        url=row.url,
        events=tuple(row.events["names"]),
        sealed=row.sealed,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _delivery(row: DeliveryRow) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        webhook_id=row.webhook_id,
        event=row.event,
        shell_id=row.shell_id,
        event_id=row.event_id,
        payload=dict(row.payload),
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        next_at=row.next_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


@dataclass(frozen=True)
class NewDelivery:
    """A delivery to add: what to send, and what it is about."""

    event: str
    payload: dict[str, Any]
    shell_id: str | None
    event_id: int | None


class WebhookStore:
    """Queries for webhooks and deliveries; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # webhooks -------------------------------------------------------------------------------------
    def add(self, rec: WebhookRecord) -> None:
        """A new webhook hears events from now on: its cursor starts at the newest event."""
        cursor = self._store.last_event_id()
        with self._store.tx() as s:
            s.add(
                WebhookRow(
                    id=rec.id,
                    tenant=rec.tenant,
                    url=rec.url,
                    events={"names": list(rec.events)},
                    sealed=rec.sealed,
                    cursor=cursor,
                    created_at=rec.created_at,
                    created_by=rec.created_by,
                )
            )

    def get(self, tenant: str, webhook_id: str) -> WebhookRecord | None:
        with self._store.tx() as s:
            row = s.get(WebhookRow, webhook_id)
            return _webhook(row) if row is not None and row.tenant == tenant else None

    def all(self, tenant: str | None) -> list[WebhookRecord]:
        with self._store.tx() as s:
            q = select(WebhookRow).order_by(WebhookRow.created_at)
            if tenant is not None:
                q = q.where(WebhookRow.tenant == tenant)
            return [_webhook(r) for r in s.scalars(q)]

    def any_exist(self) -> bool:
        """Whether any tenant has a webhook: without one there is nothing to collect or deliver
        (deliveries belong to a webhook and go with it), so the dispatcher's pass stops here."""
        with self._store.read() as conn:
            return conn.execute(select(WebhookRow.id).limit(1)).first() is not None

    def count(self, tenant: str) -> int:
        with self._store.tx() as s:
            return int(s.scalar(select(func.count()).where(WebhookRow.tenant == tenant)) or 0)

    def remove(self, webhook_id: str) -> None:
        """The webhook and its delivery log, pending deliveries included."""
        with self._store.tx() as s:
            s.execute(delete(DeliveryRow).where(DeliveryRow.webhook_id == webhook_id))
            s.execute(delete(WebhookRow).where(WebhookRow.id == webhook_id))

    def cursors(self) -> dict[str, int]:
        with self._store.tx() as s:
            return dict(s.execute(select(WebhookRow.id, WebhookRow.cursor)).all())

    # deliveries -----------------------------------------------------------------------------------
    def enqueue(self, webhook_id: str, cursor: int, items: Sequence[NewDelivery], now: datetime) -> None:
        """Add deliveries and move the webhook's cursor past the events they came from, at once:
        after a crash either both happened or neither, so no event is lost or sent twice."""
        with self._store.tx() as s:
            row = s.get(WebhookRow, webhook_id, with_for_update=True)
            if row is None:
                return
            row.cursor = max(row.cursor, cursor)
            for item in items:
                s.add(
                    DeliveryRow(
                        webhook_id=webhook_id,
                        event=item.event,
                        shell_id=item.shell_id,
                        event_id=item.event_id,
                        payload=item.payload,
                        state="pending",
                        attempts=0,
                        created_at=now,
                        next_at=now,
                        last_status=None,
                        last_error="",
                    )
                )

    def due(self, now: datetime, limit: int) -> list[DeliveryRecord]:
        """The pending deliveries to attempt now: per webhook and shell only the oldest pending one
        (a shell's events arrive in order), and only once its back-off has passed."""
        with self._store.tx() as s:
            rows = s.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.state == "pending")
                .order_by(DeliveryRow.id)
                .limit(DUE_SCAN)
            ).all()
            heads: dict[tuple[str, str | None], DeliveryRow] = {}
            for row in rows:
                key = (row.webhook_id, row.shell_id if row.shell_id is not None else f"#{row.id}")
                heads.setdefault(key, row)
            return [_delivery(r) for r in heads.values() if r.next_at <= now][:limit]

    def finish(
        self,
        delivery_id: int,
        state: str,
        attempts: int,
        next_at: datetime,
        status: int | None,
        error: str,
        keep: int,
    ) -> None:
        """Record one attempt; a finished delivery beyond the newest ``keep`` of its webhook's log
        is forgotten (pending ones are never)."""
        with self._store.tx() as s:
            row = s.get(DeliveryRow, delivery_id)
            if row is None:
                return
            row.state, row.attempts, row.next_at = state, attempts, next_at
            row.last_status, row.last_error = status, error
            if state == "pending":
                return
            old = s.scalars(
                select(DeliveryRow.id)
                .where(DeliveryRow.webhook_id == row.webhook_id, DeliveryRow.state != "pending")
                .order_by(DeliveryRow.id.desc())
                .offset(keep)
            ).all()
            if old:
                s.execute(delete(DeliveryRow).where(DeliveryRow.id.in_(old)))

    def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryRecord]:
        """The delivery log, newest first."""
        with self._store.tx() as s:
            q = (
                select(DeliveryRow)
                .where(DeliveryRow.webhook_id == webhook_id)
                .order_by(DeliveryRow.id.desc())
                .limit(limit)
            )
            return [_delivery(r) for r in s.scalars(q)]
