"""The record of moving shells between nodes: cordoned nodes, and each shell's saved state in the
object store (``control.relocate``).

A ``shell_saves`` row is a paused or stopped shell's disk as the object store keeps it (its blobs,
``parts``), and the two marks that make a move safe to cut short: ``moving_to`` names a node that
may hold a copy the record does not own yet, ``left_on`` the node a moved shell still has to be
removed from. The shell's own row (``shells.node``) alone says which node owns it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.durable import StoredPart
from ..domain.isolation import Runtime
from ..domain.shell import ShellRecord
from ..domain.states import ShellState, transition
from .repository import EventDraft, Store, _shell_from_row, utcnow
from .tables import Base, ShellRow
from .usage import follow_shell


class NodeCordonRow(Base):
    __tablename__ = "node_cordons"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cordoned_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)


class ShellSaveRow(Base):
    __tablename__ = "shell_saves"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    runtime: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    """What the shell was when saved: ``paused`` or ``stopped``."""
    taken_on: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime]
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    moving_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    left_on: Mapped[str | None] = mapped_column(String(64), nullable=True)


@dataclass(frozen=True)
class ShellSave:
    shell_id: str
    runtime: Runtime
    state: ShellState
    taken_on: str
    taken_at: datetime
    parts: tuple[StoredPart, ...]
    moving_to: str | None
    left_on: str | None


def _save(row: ShellSaveRow) -> ShellSave:
    return ShellSave(
        row.shell_id,
        Runtime(row.runtime),
        ShellState(row.state),
        row.taken_on,
        row.taken_at,
        tuple(StoredPart.from_json(p) for p in row.parts),
        row.moving_to,
        row.left_on,
    )


class MoveStore:
    """Queries for cordons and saved states; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # cordons --------------------------------------------------------------------------------------
    def cordon(self, name: str, reason: str) -> bool:
        """Cordon ``name``; false if it already was (its first reason stays)."""
        with self._store.tx() as s:
            if s.get(NodeCordonRow, name) is not None:
                return False
            s.add(NodeCordonRow(name=name, cordoned_at=utcnow(), reason=reason))
            return True

    def uncordon(self, name: str) -> bool:
        with self._store.tx() as s:
            row = s.get(NodeCordonRow, name)
            if row is None:
                return False
            s.delete(row)
            return True

    def cordoned(self) -> set[str]:
        with self._store.tx() as s:
            return set(s.scalars(select(NodeCordonRow.name)).all())

    # saved states ---------------------------------------------------------------------------------
    def get(self, shell_id: str) -> ShellSave | None:
        with self._store.tx() as s:
            row = s.get(ShellSaveRow, shell_id)
            return None if row is None else _save(row)

    def unsettled(self) -> list[ShellSave]:
        """Saves whose move was cut short: a copy to remove on ``moving_to`` or ``left_on``."""
        with self._store.tx() as s:
            q = select(ShellSaveRow).where(
                (ShellSaveRow.moving_to.is_not(None)) | (ShellSaveRow.left_on.is_not(None))
            )
            return [_save(r) for r in s.scalars(q).all()]

    def saved(
        self, shell: ShellRecord, node: str, parts: list[StoredPart], state: ShellState, taken_at: datetime
    ) -> tuple[StoredPart, ...]:
        """Record ``parts`` as the shell's saved state (it was ``state``), taken on ``node`` at
        ``taken_at``; the parts no record names now (their blobs may be collected): those of the
        save it replaces, or ``parts`` themselves when the record holds a newer save or the shell
        is on another node by now."""
        with self._store.tx() as s:
            owner = s.get(ShellRow, shell.id, with_for_update=True)
            row = s.get(ShellSaveRow, shell.id, with_for_update=True)
            if owner is None or owner.node != node or (row is not None and row.taken_at > taken_at):
                return tuple(parts)
            old = () if row is None else _save(row).parts
            if row is None:
                row = ShellSaveRow(shell_id=shell.id)
                s.add(row)
            row.runtime = shell.runtime.value
            row.state = state.value
            row.taken_on = node
            row.taken_at = taken_at
            row.parts = [p.to_json() for p in parts]
            return old

    def mark(self, shell_id: str, *, moving_to: str | None = None, left_on: str | None = None) -> None:
        """Set (or with None clear) the two marks of a move."""
        with self._store.tx() as s:
            row = s.get(ShellSaveRow, shell_id, with_for_update=True)
            if row is not None:
                row.moving_to = moving_to
                row.left_on = left_on

    def switch(
        self,
        shell_id: str,
        source: str,
        target: str,
        states: tuple[ShellState, ...],
        new_state: ShellState,
        reason: str,
        draft: EventDraft,
    ) -> ShellRecord | None:
        """In one transaction: the shell now belongs to ``target``, in ``new_state``; the source's
        copy is marked to be removed. None (nothing written) unless the record still says the shell
        is on ``source`` in one of ``states``: whatever happened to it meanwhile wins."""
        with self._store.tx() as s:
            row = s.get(ShellRow, shell_id, with_for_update=True)
            save = s.get(ShellSaveRow, shell_id, with_for_update=True)
            if row is None or save is None or row.node != source or ShellState(row.state) not in states:
                return None
            if ShellState(row.state) is not new_state:
                row.state = transition(ShellState(row.state), new_state).value
                row.state_reason = reason
            row.node = target
            row.updated_at = utcnow()
            follow_shell(s, row, self._store.clock.now())
            save.moving_to = None
            save.left_on = source
            self._store.record_event(s, draft, row.updated_at)
            return _shell_from_row(row)

    def blobs_in_use(self) -> set[str]:
        with self._store.tx() as s:
            return {str(p["sha256"]) for parts in s.scalars(select(ShellSaveRow.parts)).all() for p in parts}
