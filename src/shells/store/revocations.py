"""Token revocations heard by every process that shares the record, so a token cache
(``control.auth``) stops answering for a token revoked elsewhere as soon as the news arrives.

A revocation is announced in its own transaction (``announce``: PostgreSQL's ``NOTIFY``, which the
database delivers to every listener when, and only if, the transaction commits). Each process keeps
a ``RevocationWatch``: a generation that changes whenever a token may have been revoked, and
``current()``, which is None while a revocation could be on its way unheard. A cache keeps a token
only under the generation it was read in, and trusts nothing while ``current()`` is None.

On PostgreSQL one thread per process holds a connection that LISTENs and pings it every second:
``current()`` is None while that connection is down or silent for ``SILENT_S``, and while a notice
sits unread on its socket or is being read (so a request served after PostgreSQL delivered the notice
to this process cannot be answered from the cache). What remains is PostgreSQL's delivery: the
commit signals every listening backend, which sends the notice when it next runs (milliseconds; the
bound docs/security.md states is tested by ``tests/e2e/test_token_revocation_replicas.py``). Whatever
happens, no cached token is older than the cache's own lifetime. SQLite has no notifications:
revocations by this process are heard at once, another process's within the cache's lifetime.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CHANNEL = "shells_token_revoked"
PING_S = 1.0
"""How often the listening connection is checked when nothing arrives."""
SILENT_S = 3.0
"""A listening connection not heard from for this long no longer vouches for the cache."""
RECONNECT_S = 1.0


def announce(session: Session, token_id: str) -> None:
    """Tell every process on the record, once ``session`` commits, that ``token_id`` was revoked."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :token)"), {"channel": CHANNEL, "token": token_id})


class RevocationWatch:
    """The revocations this process has heard of (this one: SQLite's, only its own)."""

    def __init__(self) -> None:
        self.generation = 0
        self._bump = threading.Lock()

    def changed(self) -> None:
        """A token may have been revoked: whatever a cache holds is stale."""
        with self._bump:
            self.generation += 1

    def current(self) -> int | None:
        """The generation a token read now may be cached under; None: cache nothing now."""
        return self.generation

    def close(self) -> None:
        """Stop listening (nothing to stop here)."""


class PostgresWatch(RevocationWatch):
    """Revocations heard through ``LISTEN`` on a connection of its own, in a daemon thread started
    at the first ``current()`` (a process that never authenticates opens no connection)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        """Written by ``close`` to end the thread's wait at once."""
        self._fd: int | None = None
        self._reading = False
        self._heard_at = 0.0

    def current(self) -> int | None:
        if self._thread is None:
            self._start()
        fd = self._fd
        if fd is None or time.monotonic() - self._heard_at > SILENT_S:
            return None
        try:
            pending, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return None
        # in this order: a notice no longer on the socket is being read (_reading) or was counted
        if pending or self._reading:
            return None
        return self.generation

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=PING_S + 5)
        self._wake_r.close()
        self._wake_w.close()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="token revocations", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.add_notify_handler(lambda _notice: self.changed())
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.changed()  # whatever was revoked while nobody here listened
                    self._heard_at = time.monotonic()
                    self._fd = conn.fileno()
                    try:
                        self._listen(conn)
                    finally:
                        self._fd = None
            except psycopg.Error as exc:
                log.warning("not hearing token revocations (%s); tokens are read on every request", exc)
                select.select([self._wake_r], [], [], RECONNECT_S)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        """Until stopped: wait for a notice or the next ping, then let a round trip read whatever
        arrived (the notify handler counts each notice)."""
        fd = conn.fileno()
        while not self._stop.is_set():
            select.select([fd, self._wake_r.fileno()], [], [], PING_S)
            if self._stop.is_set():
                return
            self._reading = True
            try:
                conn.execute("SELECT 1")
            finally:
                self._reading = False
            self._heard_at = time.monotonic()


def watch_for(url: str) -> RevocationWatch:
    """The watch for a record at ``url``."""
    return PostgresWatch(url) if url.startswith("postgresql") else RevocationWatch()
