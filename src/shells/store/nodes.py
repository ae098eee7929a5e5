"""The record of a cluster's nodes: each node's registration generation and whether it is ready or
gone (``domain.nodes.NodeRecord``), and the shells the record assigns to each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, false, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.nodes import GONE, READY, NodeRecord
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .repository import Store, _shell_from_row, utcnow
from .tables import Base, ShellRow

HELD = (ShellState.CREATING, ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED, ShellState.FAILED)
"""States of a shell whose host objects its node keeps (lost and deleted ones are not kept)."""


class NodeRow(Base):
    __tablename__ = "cluster_nodes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int]
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime]


def _record(row: NodeRow) -> NodeRecord:
    return NodeRecord(row.name, row.generation, row.state, row.reason, row.changed_at)


class NodeStore:
    """Queries for the cluster's nodes; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def all(self) -> dict[str, NodeRecord]:
        with self._store.tx() as s:
            return {r.name: _record(r) for r in s.scalars(select(NodeRow)).all()}

    def register(self, name: str, generation: int) -> NodeRecord:
        """The node is ready under ``generation`` (which must be newer than the recorded one: a
        registration that lost a race to a newer one changes nothing and returns that one)."""
        with self._store.tx() as s:
            row = s.get(NodeRow, name, with_for_update=True)
            if row is None:
                row = NodeRow(name=name, generation=0, state=GONE, reason="", changed_at=utcnow())
                s.add(row)
            if generation > row.generation:
                row.generation, row.state, row.reason, row.changed_at = generation, READY, "", utcnow()
            return _record(row)

    def mark_gone(self, name: str, generation: int, reason: str) -> bool:
        """Record the node gone, if it is still ready under ``generation``; whether it changed."""
        with self._store.tx() as s:
            row = s.get(NodeRow, name, with_for_update=True)
            if row is None or row.state != READY or row.generation != generation:
                return False
            row.state, row.reason, row.changed_at = GONE, reason, utcnow()
            return True

    def assigned(self, name: str) -> list[ShellRecord]:
        """Every shell the record keeps on node ``name`` (pool shells included)."""
        with self._store.tx() as s:
            rows = s.scalars(
                select(ShellRow).where(ShellRow.node == name, ShellRow.state.in_([h.value for h in HELD]))
            ).all()
            return [_shell_from_row(r) for r in rows]

    def placed(self) -> dict[str, int]:
        """How many shells (pool shells excluded) the record keeps on each node."""
        with self._store.tx() as s:
            rows = s.execute(
                select(ShellRow.node, func.count())
                .where(ShellRow.pooled == false(), ShellRow.state.in_([h.value for h in HELD]))
                .group_by(ShellRow.node)
            ).all()
            return {str(node): int(count) for node, count in rows}
