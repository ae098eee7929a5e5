"""A real PostgreSQL 15 for tests: Debian's server binaries run as the ``postgres`` user (or, for a
user without root, as that user: PostgreSQL refuses only root) on a throwaway data directory,
listening on a free loopback port, gone when the context ends.

Each test asks for its own database (``new_database``), so one server serves a whole session."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
START_TIMEOUT_S = 30.0
_names = itertools.count(1)


def missing() -> str | None:
    """Why no PostgreSQL can run here, or None when it can."""
    if not BIN_DIRS:
        return "PostgreSQL's server binaries are not installed (Debian package postgresql-15)"
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no 'postgres' user to run PostgreSQL as (it refuses to run as root)"
    return None


def _server_user() -> str | None:
    """Whom the server's binaries run as: ``postgres`` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        """A SQLAlchemy URL for ``database`` on this server (trust auth on loopback: tests only)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(BIN_DIRS[0] / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def new_database(self, prefix: str = "shells", template: str = "") -> str:
        """A fresh database, empty or a copy of the database ``template`` names (which nobody may
        be connected to); returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(_names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def start(self) -> None:
        """Start again on the same port and data after ``stop``."""
        self.proc = _start(self.data_dir, self.port)

    def stop(self, *, fast: bool = False) -> None:
        """PostgreSQL's "smart" shutdown (SIGTERM: it waits up to 5 s for clients to leave), then its
        "fast" one (SIGINT: clients are cut off); ``fast`` at once, when the data is thrown away."""
        if self.proc.poll() is None:
            if not fast:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                    return
                except subprocess.TimeoutExpired:
                    pass
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    log = (data_dir.parent / "postgres.log").open("ab")
    proc = subprocess.Popen(
        [
            str(BIN_DIRS[0] / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={data_dir.parent}",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        user=_server_user(),
        group=_server_user(),
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited: {(data_dir.parent / 'postgres.log').read_text()}")
        ready = subprocess.run(
            [str(BIN_DIRS[0] / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        )
        if ready.returncode == 0:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("postgres did not accept connections in time")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL on a throwaway directory (removed afterwards)."""
    top = Path(tempfile.mkdtemp(prefix="shells-pg-", dir="/var/tmp"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(top, user.pw_uid, user.pw_gid)
    data_dir = top / "data"
    try:
        subprocess.run(
            [
                str(BIN_DIRS[0] / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=_server_user(),
            group=_server_user(),
        )
        port = _free_port()
        server = PostgresServer(data_dir, port, _start(data_dir, port))
        try:
            yield server
        finally:
            server.stop(fast=True)  # the data is thrown away: no need to wait for clients to leave
    finally:
        shutil.rmtree(top, ignore_errors=True)
