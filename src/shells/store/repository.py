"""All reads and writes of records. Each state change is one transaction plus one event."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, bindparam, create_engine, event, func, insert, or_, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..domain.audit import AuditQuery, RequestInfo
from ..domain.clock import SYSTEM_CLOCK, Clock
from ..domain.durable import StoredPart
from ..domain.errors import RecordUnavailable, ShellNotFound
from ..domain.isolation import Language, Runtime
from ..domain.network import NetworkAccess, NetworkMode
from ..domain.shell import EventRecord, ShellRecord, SnapshotRecord
from ..domain.states import ShellState, transition
from .tables import EventRow, ShellRow, SnapshotRow
from .tenancy import TenancyStore
from .usage import UsageStore, follow_shell

EVENT_INSERT = insert(EventRow)
"""One statement object for every ``add_event``: its cache key is computed once, not per event."""
SHELL_BY_ID = select(ShellRow.__table__).where(ShellRow.__table__.c.id == bindparam("id"))

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Sealer(Protocol):
    """What a migration that seals values in place needs (``control.secret_box.SecretBox``): the
    key stays outside the database, so the store is handed the box instead of holding one."""

    def seal(self, tenant: str, name: str, value: str) -> bytes: ...

    def open(self, tenant: str, name: str, sealed: bytes) -> str: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EventDraft:
    """An event before it has an id and a time; the store assigns both in the same transaction."""

    tenant: str
    shell_id: str | None
    principal: str
    door: str
    kind: str
    action: str
    outcome: str = "ok"
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    """Defaults to ``shell_id``."""
    request: RequestInfo | None = field(default=None, compare=False)
    """The request this event belongs to (its id is stored; it is marked recorded when written)."""


def _shell_from_row(row: ShellRow | Row[Any]) -> ShellRecord:
    """A shell's record from its ORM row or a plain row of its table (the same column names)."""
    net = row.network
    return ShellRecord(
        id=row.id,
        tenant=row.tenant,
        owner=row.owner,
        name=row.name,
        state=ShellState(row.state),
        state_reason=row.state_reason,
        runtime=Runtime(row.runtime),
        language=Language(row.language),
        template=row.template,
        network=NetworkAccess(NetworkMode(net["mode"]), tuple(net.get("allow", ()))),
        shape=row.shape,
        region=row.region,
        env=dict(row.env),
        labels=dict(row.labels),
        source_snapshot=row.source_snapshot,
        pooled=row.pooled,
        idle_timeout_s=row.idle_timeout_s,
        expires_at=row.expires_at,
        on_timeout=row.on_timeout or "kill",
        auto_resume=row.auto_resume,
        node=row.node,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _copy_into_row(rec: ShellRecord, row: ShellRow) -> None:
    row.tenant, row.owner, row.name = rec.tenant, rec.owner, rec.name
    row.state, row.state_reason = rec.state.value, rec.state_reason
    row.runtime, row.language, row.template = rec.runtime.value, rec.language.value, rec.template
    row.network, row.shape, row.region = rec.network.to_dict(), rec.shape, rec.region
    row.env, row.labels = dict(rec.env), dict(rec.labels)
    row.source_snapshot, row.pooled = rec.source_snapshot, rec.pooled
    row.idle_timeout_s = rec.idle_timeout_s
    row.expires_at, row.on_timeout = rec.expires_at, rec.on_timeout
    row.idle_timeout_s, row.auto_resume = rec.idle_timeout_s, rec.auto_resume
    row.node = rec.node
    row.created_at, row.updated_at = rec.created_at, rec.updated_at


def _event_from_row(row: EventRow) -> EventRecord:
    return EventRecord(
        id=row.id,
        at=row.at,
        tenant=row.tenant,
        shell_id=row.shell_id,
        principal=row.principal,
        door=row.door,
        kind=row.kind,
        action=row.action,
        outcome=row.outcome,
        message=row.message,
        details=dict(row.details),
        target=row.target,
        request_id=row.request_id,
    )


def _snapshot_from_row(row: SnapshotRow) -> SnapshotRecord:
    return SnapshotRecord(
        id=row.id,
        tenant=row.tenant,
        shell_id=row.shell_id,
        runtime=Runtime(row.runtime),
        template=row.template,
        language=Language(row.language),
        name=row.name,
        created_at=row.created_at,
        durable_at=row.durable_at,
        parts=tuple(StoredPart.from_json(p) for p in row.parts or ()),
    )


def event_values(draft: EventDraft, at: datetime) -> dict[str, Any]:
    """The columns of an audit event's row (all but its id); the request it belongs to is marked
    recorded (see ``Audit.finish``)."""
    if draft.request is not None:
        draft.request.recorded = True
    return {
        "at": at,
        "tenant": draft.tenant,
        "shell_id": draft.shell_id,
        "principal": draft.principal,
        "door": draft.door,
        "kind": draft.kind,
        "action": draft.action,
        "outcome": draft.outcome,
        "message": draft.message,
        "details": draft.details,
        "target": draft.target or draft.shell_id,
        "request_id": draft.request.request_id if draft.request is not None else None,
    }


def event_row(draft: EventDraft, at: datetime) -> EventRow:
    """The row of an audit event, for a transaction that writes it with other rows."""
    return EventRow(**event_values(draft, at))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    """The record of every shell, event and snapshot, and the sessions every area of the record
    uses. Areas are classes over a ``Store`` with their tables beside them: the ones every layer
    reads are attributes (``tenancy``: ``TenancyStore``; ``usage``: ``UsageStore``, whose intervals
    every write of a shell row keeps in step through ``follow_shell``), the others are made by the
    use case that owns them (``SecretsStore(store)``, ``WebhookStore``, ``NetworkingStore``,
    ``TemplateStore``). SQLite by default, PostgreSQL by URL. ``clock`` times the usage intervals
    (tests pass one they control)."""

    def __init__(self, url: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        if url.startswith("sqlite"):
            self.engine: Engine = create_engine(url)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # A server database restarts or fails over: a pooled connection is checked before use,
            # so a restart costs the requests in flight at that moment, not every later one.
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.tenancy = TenancyStore(self)
        self.usage = UsageStore(self)

    def migrate(self, box: Sealer | None = None) -> None:
        """Bring the schema to the newest Alembic revision (idempotent). ``box`` seals values a
        migration moves out of the clear (0016: webhook secrets); without it such a migration
        refuses to run over rows it would have to seal."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url)
        cfg.attributes["connection"] = None
        cfg.attributes["box"] = box
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # pysqlite opens a transaction only before DML, so a migration that starts with DDL
                # would commit at once; an explicit BEGIN makes the whole upgrade all or nothing, as
                # on PostgreSQL (a refused migration must not leave earlier ones half-recorded).
                conn.exec_driver_sql("BEGIN")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

    def close(self) -> None:
        self.tenancy.revocations.close()
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One transaction. A database that cannot be reached (or drops the connection) is
        ``RecordUnavailable``: the transaction was rolled back and may be sent again."""
        with self._answered(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A plain connection for a hot read: no ORM session and its identity map, which cost a
        small SELECT 40 % more CPU. Errors as in ``tx``."""
        with self._answered(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _answered(self) -> Iterator[None]:
        """``RecordUnavailable`` for a database that cannot be reached (see ``tx``)."""
        try:
            yield
        except DBAPIError as exc:
            if exc.connection_invalidated or self._unreachable(exc):
                raise RecordUnavailable(
                    "The record's database did not answer; nothing was written. Try again shortly.",
                    {"retry_after_s": 1},
                ) from exc
            raise

    def _unreachable(self, exc: DBAPIError) -> bool:
        """A server database that refused, reset or shut down the connection (SQLite's own
        operational errors, such as a full disk, stay what they are)."""
        return self.engine.dialect.name != "sqlite" and isinstance(exc, OperationalError | InterfaceError)

    def record_event(self, session: Session, draft: EventDraft, at: datetime) -> None:
        """Add the audit event of a change to the transaction ``session`` that makes it."""
        session.add(event_row(draft, at))

    # shells ---------------------------------------------------------------------------------------
    def add_shell(self, rec: ShellRecord, draft: EventDraft | None = None) -> None:
        with self.tx() as s:
            row = ShellRow(id=rec.id)
            _copy_into_row(rec, row)
            s.add(row)
            follow_shell(s, row, self.clock.now())
            if draft is not None:
                self.record_event(s, draft, rec.created_at)

    def get_shell(self, shell_id: str) -> ShellRecord | None:
        """One shell's row. The hottest read of the API (every request about one shell, each exec):
        a plain SELECT on a pooled connection, without an ORM session and its identity map, which
        cost it 40 % more CPU."""
        with self.read() as conn:
            row = conn.execute(SHELL_BY_ID, {"id": shell_id}).first()
            return None if row is None else _shell_from_row(row)

    def list_shells(
        self,
        tenant: str | None = None,
        *,
        pooled: bool = False,
        include_deleted: bool = False,
    ) -> list[ShellRecord]:
        with self.tx() as s:
            q = select(ShellRow).where(ShellRow.pooled == pooled)
            if tenant is not None:
                q = q.where(ShellRow.tenant == tenant)
            if not include_deleted:
                q = q.where(ShellRow.state != ShellState.DELETED.value)
            rows = s.scalars(q.order_by(ShellRow.created_at.desc())).all()
            return [_shell_from_row(r) for r in rows]

    def idle_candidates(self) -> list[tuple[str, Runtime, int]]:
        """``(id, runtime, idle_timeout_s)`` of every running shell with an idle timeout (pool
        shells aside): what the once-a-second idle sweep looks at, without reading whole rows."""
        t = ShellRow.__table__
        q = select(t.c.id, t.c.runtime, t.c.idle_timeout_s).where(
            t.c.state == ShellState.RUNNING.value, t.c.idle_timeout_s > 0, t.c.pooled.is_(False)
        )
        with self.read() as conn:
            return [(r.id, Runtime(r.runtime), r.idle_timeout_s) for r in conn.execute(q)]

    def save_shell(self, rec: ShellRecord, draft: EventDraft | None = None) -> None:
        """Write the mutable fields of ``rec`` (not its state: that goes through change_state)."""
        with self.tx() as s:
            row = s.get(ShellRow, rec.id)
            if row is None:
                raise ShellNotFound(f"Shell '{rec.id}' does not exist.")
            state = row.state
            rec.updated_at = utcnow()
            _copy_into_row(rec, row)
            row.state = state
            follow_shell(s, row, self.clock.now())
            if draft is not None:
                self.record_event(s, draft, rec.updated_at)

    def change_state(self, shell_id: str, target: ShellState, reason: str, draft: EventDraft) -> ShellRecord:
        """Move a shell through the state machine and record why, atomically."""
        with self.tx() as s:
            row = s.get(ShellRow, shell_id, with_for_update=True)
            if row is None:
                raise ShellNotFound(f"Shell '{shell_id}' does not exist.")
            row.state = transition(ShellState(row.state), target).value
            row.state_reason = reason
            row.updated_at = utcnow()
            follow_shell(s, row, self.clock.now())
            self.record_event(s, draft, row.updated_at)
            return _shell_from_row(row)

    def claim_pooled(
        self, template: str, shape: str, mode: str, runtime: Runtime = Runtime.CONTAINER
    ) -> ShellRecord | None:
        """Take one running pool shell of ``runtime`` matching the request out of the pool, or None."""
        with self.tx() as s:
            candidates = s.scalars(
                select(ShellRow)
                .where(
                    ShellRow.pooled.is_(True),
                    ShellRow.runtime == runtime.value,
                    ShellRow.state == ShellState.RUNNING.value,
                    ShellRow.template == template,
                    ShellRow.shape == shape,
                )
                .order_by(ShellRow.created_at)
            ).all()
            for row in candidates:
                if row.network.get("mode") == mode:
                    row.pooled = False
                    return _shell_from_row(row)
            return None

    def purge_shell(self, shell_id: str) -> bool:
        """Forget a pool shell that never reached a user (it has no history worth keeping); false
        when it is no pool shell (any more: a claim took it)."""
        with self.tx() as s:
            row = s.get(ShellRow, shell_id)
            if row is not None and row.pooled:
                s.delete(row)
                return True
            return False

    # events ---------------------------------------------------------------------------------------
    def add_event(self, draft: EventDraft) -> EventRecord:
        """One audit event in a transaction of its own: a plain INSERT of one prepared statement
        (every exec and most requests write one; the ORM's unit of work cost it 2.5 times the CPU,
        and building an ORM row and a new statement per event still took half of what is left)."""
        values = event_values(draft, utcnow())
        with self._answered(), self.engine.begin() as conn:
            key = conn.execute(EVENT_INSERT, values).inserted_primary_key
        assert key is not None  # a single-row INSERT always reports its key
        return EventRecord(id=key[0], **(values | {"details": dict(values["details"])}))

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none): where a live feed starts."""
        with self.tx() as s:
            return int(s.scalar(select(func.max(EventRow.id))) or 0)

    def list_events(
        self,
        *,
        tenant: str | None,
        shell_id: str | None,
        after: int = 0,
        limit: int = 500,
        query: AuditQuery | None = None,
    ) -> list[EventRecord]:
        """Events oldest first; ``query`` filters the audit trail (its ``shell`` also matches events
        that only name the shell as their target, such as refused requests)."""
        with self.tx() as s:
            q = select(EventRow).where(EventRow.id > after)
            if tenant is not None:
                q = q.where(EventRow.tenant == tenant)
            if shell_id is not None:
                q = q.where(EventRow.shell_id == shell_id)
            if query is not None:
                if query.shell is not None:
                    q = q.where(or_(EventRow.shell_id == query.shell, EventRow.target == query.shell))
                for column, value in (
                    (EventRow.principal, query.actor),
                    (EventRow.action, query.action),
                    (EventRow.door, query.door),
                    (EventRow.outcome, query.outcome),
                ):
                    if value is not None:
                        q = q.where(column == value)
                if query.since is not None:
                    q = q.where(EventRow.at >= query.since)
                if query.until is not None:
                    q = q.where(EventRow.at < query.until)
            rows = s.scalars(q.order_by(EventRow.id).limit(limit)).all()
            return [_event_from_row(r) for r in rows]

    # snapshots ------------------------------------------------------------------------------------
    def add_snapshot(self, snap: SnapshotRecord, draft: EventDraft) -> None:
        with self.tx() as s:
            s.add(
                SnapshotRow(
                    id=snap.id,
                    tenant=snap.tenant,
                    shell_id=snap.shell_id,
                    runtime=snap.runtime.value,
                    template=snap.template,
                    language=snap.language.value,
                    name=snap.name,
                    created_at=snap.created_at,
                )
            )
            self.record_event(s, draft, snap.created_at)

    def get_snapshot(self, snap_id: str) -> SnapshotRecord | None:
        with self.tx() as s:
            row = s.get(SnapshotRow, snap_id)
            return None if row is None or row.deleted_at is not None else _snapshot_from_row(row)

    def list_snapshots(self, tenant: str | None, shell_id: str | None = None) -> list[SnapshotRecord]:
        with self.tx() as s:
            q = select(SnapshotRow).where(SnapshotRow.deleted_at.is_(None))
            if tenant is not None:
                q = q.where(SnapshotRow.tenant == tenant)
            if shell_id is not None:
                q = q.where(SnapshotRow.shell_id == shell_id)
            return [_snapshot_from_row(r) for r in s.scalars(q.order_by(SnapshotRow.created_at)).all()]

    def all_snapshot_ids(self) -> set[str]:
        """Every snapshot still kept, of every tenant (for reconciliation)."""
        with self.tx() as s:
            return set(s.scalars(select(SnapshotRow.id).where(SnapshotRow.deleted_at.is_(None))).all())

    def mark_snapshot_deleted(self, snap_id: str, draft: EventDraft | None = None) -> None:
        """The snapshot no longer kept (its audit event, if given, in the same transaction)."""
        with self.tx() as s:
            row = s.get(SnapshotRow, snap_id)
            if row is not None:
                row.deleted_at = utcnow()
                if draft is not None:
                    s.add(event_row(draft, row.deleted_at))

    def mark_snapshot_durable(self, snap_id: str, parts: Sequence[StoredPart]) -> datetime | None:
        """Record that ``parts`` hold the snapshot in the object store; when (None: it was deleted
        meanwhile, and its blobs are the caller's to remove)."""
        with self.tx() as s:
            row = s.get(SnapshotRow, snap_id)
            if row is None or row.deleted_at is not None:
                return None
            row.parts = [p.to_json() for p in parts]
            row.durable_at = utcnow()
            return row.durable_at

    def blobs_in_use(self) -> set[str]:
        """The digest of every blob a kept snapshot needs (a blob outside it may be removed)."""
        with self.tx() as s:
            q = select(SnapshotRow.parts).where(
                SnapshotRow.deleted_at.is_(None), SnapshotRow.parts.is_not(None)
            )
            return {str(p["sha256"]) for parts in s.scalars(q).all() for p in parts or ()}
