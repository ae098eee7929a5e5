"""Persistence of private networks, their members, the blocked-connection log and exposed ports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from ..domain.network import BlockedAttempt
from ..domain.networking import (
    MAX_BLOCKED_PER_SHELL,
    OVERFLOW_DESTINATION,
    ExposedPort,
    NetworkRecord,
)
from .repository import EventDraft, Store, utcnow
from .tables import Base


class NetworkRow(Base):
    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("tenant", "name", name="uq_networks_tenant_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64))
    cidr: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class NetworkMemberRow(Base):
    __tablename__ = "network_members"

    network_id: Mapped[str] = mapped_column(String(64), ForeignKey("networks.id"), primary_key=True)
    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True, index=True)
    address: Mapped[str] = mapped_column(String(64))


class BlockedRow(Base):
    __tablename__ = "blocked_attempts"
    __table_args__ = (Index("ix_blocked_shell_last", "shell_id", "last_seen"),)

    shell_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    destination: Mapped[str] = mapped_column(String(255), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: no port (ICMP, DNS name)
    protocol: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]


class ExposedPortRow(Base):
    __tablename__ = "exposed_ports"

    shell_id: Mapped[str] = mapped_column(String(64), ForeignKey("shells.id"), primary_key=True)
    port: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    public: Mapped[bool]
    token_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime]


def _blocked(row: BlockedRow) -> BlockedAttempt:
    return BlockedAttempt(
        destination=row.destination,
        port=row.port or None,
        protocol=row.protocol,
        count=row.count,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def _exposed(row: ExposedPortRow) -> ExposedPort:
    return ExposedPort(
        shell_id=row.shell_id,
        tenant=row.tenant,
        port=row.port,
        public=row.public,
        token_hash=row.token_hash,
        created_at=row.created_at,
    )


class NetworkingStore:
    """Queries for the networking records; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # private networks -----------------------------------------------------------------------------
    def add_network(self, rec: NetworkRecord, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.add(
                NetworkRow(
                    id=rec.id, tenant=rec.tenant, name=rec.name, cidr=rec.cidr, created_at=rec.created_at
                )
            )
            self._store.record_event(s, draft, rec.created_at)

    def get_network(self, tenant: str, name_or_id: str) -> NetworkRecord | None:
        with self._store.tx() as s:
            row = s.scalars(
                select(NetworkRow).where(
                    NetworkRow.tenant == tenant,
                    (NetworkRow.name == name_or_id) | (NetworkRow.id == name_or_id),
                )
            ).first()
            if row is None:
                return None
            members = s.execute(
                select(NetworkMemberRow.shell_id, NetworkMemberRow.address).where(
                    NetworkMemberRow.network_id == row.id
                )
            ).all()
            return NetworkRecord(row.id, row.tenant, row.name, row.cidr, row.created_at, dict(members))

    def list_networks(self, tenant: str | None) -> list[NetworkRecord]:
        with self._store.tx() as s:
            q = select(NetworkRow).order_by(NetworkRow.created_at)
            if tenant is not None:
                q = q.where(NetworkRow.tenant == tenant)
            rows = s.scalars(q).all()
            members: dict[str, dict[str, str]] = {r.id: {} for r in rows}
            for m in s.scalars(select(NetworkMemberRow).where(NetworkMemberRow.network_id.in_(members))):
                members[m.network_id][m.shell_id] = m.address
            return [NetworkRecord(r.id, r.tenant, r.name, r.cidr, r.created_at, members[r.id]) for r in rows]

    def network_name(self, network_id: str) -> str | None:
        with self._store.tx() as s:
            return s.scalar(select(NetworkRow.name).where(NetworkRow.id == network_id))

    def used_cidrs(self) -> set[str]:
        with self._store.tx() as s:
            return set(s.scalars(select(NetworkRow.cidr)))

    def delete_network(self, network_id: str, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.execute(delete(NetworkRow).where(NetworkRow.id == network_id))
            self._store.record_event(s, draft, utcnow())

    def add_member(self, network_id: str, shell_id: str, address: str, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.add(NetworkMemberRow(network_id=network_id, shell_id=shell_id, address=address))
            self._store.record_event(s, draft, utcnow())

    def remove_member(self, network_id: str, shell_id: str, draft: EventDraft | None) -> None:
        with self._store.tx() as s:
            s.execute(
                delete(NetworkMemberRow).where(
                    NetworkMemberRow.network_id == network_id, NetworkMemberRow.shell_id == shell_id
                )
            )
            if draft is not None:
                self._store.record_event(s, draft, utcnow())

    def memberships(self, shell_id: str) -> list[NetworkRecord]:
        """The private networks a shell is on (with every member, for its DNS)."""
        with self._store.tx() as s:
            ids = list(
                s.scalars(select(NetworkMemberRow.network_id).where(NetworkMemberRow.shell_id == shell_id))
            )
            tenant = s.scalar(select(NetworkRow.tenant).where(NetworkRow.id.in_(ids)).limit(1))
        if tenant is None:
            return []
        return [n for n in self.list_networks(tenant) if n.id in ids]

    def forget_shell(self, shell_id: str) -> None:
        """Drop everything networking keeps about a deleted shell (memberships, ports, blocked log)."""
        with self._store.tx() as s:
            s.execute(delete(NetworkMemberRow).where(NetworkMemberRow.shell_id == shell_id))
            s.execute(delete(ExposedPortRow).where(ExposedPortRow.shell_id == shell_id))
            s.execute(delete(BlockedRow).where(BlockedRow.shell_id == shell_id))

    # blocked attempts -----------------------------------------------------------------------------
    def record_blocked(
        self, shell_id: str, attempts: Iterable[BlockedAttempt], new_destination: EventDraft | None
    ) -> list[BlockedAttempt]:
        """Add counts to the shell's aggregated log; return the destinations seen for the first time.

        ``new_destination`` is a template event; one event per first-seen destination is written
        with the destination in its details, so the activity feed shows what was tried without one
        row per packet."""
        fresh: list[BlockedAttempt] = []
        with self._store.tx() as s:
            distinct = (
                s.scalar(select(func.count()).select_from(BlockedRow).where(BlockedRow.shell_id == shell_id))
                or 0
            )
            for a in attempts:
                key = (shell_id, a.destination, a.port or 0, a.protocol)
                row = s.get(BlockedRow, key)
                if row is None and distinct >= MAX_BLOCKED_PER_SHELL:
                    key = (shell_id, OVERFLOW_DESTINATION, 0, "any")
                    row = s.get(BlockedRow, key)
                if row is None:
                    row = BlockedRow(
                        shell_id=key[0],
                        destination=key[1],
                        port=key[2],
                        protocol=key[3],
                        count=0,
                        first_seen=a.first_seen,
                        last_seen=a.last_seen,
                    )
                    s.add(row)
                    distinct += 1
                    fresh.append(a)
                    if new_destination is not None:
                        details = {**new_destination.details, **a.to_dict()}
                        draft = EventDraft(**{**new_destination.__dict__, "details": details})
                        self._store.record_event(s, draft, a.last_seen)
                row.count += a.count
                row.first_seen = min(row.first_seen, a.first_seen)
                row.last_seen = max(row.last_seen, a.last_seen)
        return fresh

    def blocked(self, shell_id: str, limit: int = MAX_BLOCKED_PER_SHELL) -> list[BlockedAttempt]:
        with self._store.tx() as s:
            rows = s.scalars(
                select(BlockedRow)
                .where(BlockedRow.shell_id == shell_id)
                .order_by(BlockedRow.last_seen.desc())
                .limit(limit)
            )
            return [_blocked(r) for r in rows]

    # exposed ports --------------------------------------------------------------------------------
    def add_port(self, rec: ExposedPort, draft: EventDraft) -> None:
        with self._store.tx() as s:
            s.merge(
                ExposedPortRow(
                    shell_id=rec.shell_id,
                    port=rec.port,
                    tenant=rec.tenant,
                    public=rec.public,
                    token_hash=rec.token_hash,
                    created_at=rec.created_at,
                )
            )
            self._store.record_event(s, draft, rec.created_at)

    def get_port(self, shell_id: str, port: int) -> ExposedPort | None:
        with self._store.tx() as s:
            row = s.get(ExposedPortRow, (shell_id, port))
            return None if row is None else _exposed(row)

    def list_ports(self, shell_id: str) -> list[ExposedPort]:
        with self._store.tx() as s:
            rows = s.scalars(
                select(ExposedPortRow)
                .where(ExposedPortRow.shell_id == shell_id)
                .order_by(ExposedPortRow.port)
            )
            return [_exposed(r) for r in rows]

    def all_ports(self) -> list[ExposedPort]:
        """Every exposed port of the instance (what the control plane sends the nodes)."""
        with self._store.tx() as s:
            rows = s.scalars(select(ExposedPortRow).order_by(ExposedPortRow.shell_id, ExposedPortRow.port))
            return [_exposed(r) for r in rows]

    def remove_port(self, shell_id: str, port: int, draft: EventDraft) -> bool:
        with self._store.tx() as s:
            gone = s.execute(
                delete(ExposedPortRow).where(ExposedPortRow.shell_id == shell_id, ExposedPortRow.port == port)
            )
            self._store.record_event(s, draft, utcnow())
            return bool(getattr(gone, "rowcount", 0))
