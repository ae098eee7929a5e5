"""Shared fixtures for the host-primitive tests: a scratch dir and a real loop-mounted btrfs pool."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.runtime.host import _libc
from shells.runtime.host.btrfs import BtrfsPool
from shells.store.repository import Store
from tests.support.postgres import PostgresServer


def loops_backed_by(image: Path) -> list[str]:
    """Loop devices still attached to ``image`` (a test must leave none)."""
    target = str(image.resolve())
    return [
        b.parent.parent.name
        for b in Path("/sys/block").glob("loop*/loop/backing_file")
        if b.read_text().strip() == target
    ]


@pytest.fixture
def anyio_backend() -> str:
    """The event loop of every async unit test (``@pytest.mark.anyio``): asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A private scratch dir; teardown unmounts anything left below it and removes it."""
    top = Path(tempfile.mkdtemp(prefix="shells-test-", dir="/var/tmp"))
    try:
        yield top
    finally:
        for mount_point in _libc.mounts_below(top):
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(workdir: Path) -> Iterator[BtrfsPool]:
    """A 4 GiB sparse btrfs image, loop-mounted for one test module."""
    p = BtrfsPool(workdir / "pool", workdir / "pool.img", size_bytes=4 << 30)
    p.ensure_mounted()
    try:
        yield p
    finally:
        p.unmount()
        assert loops_backed_by(workdir / "pool.img") == []


@pytest.fixture(params=["sqlite", "postgresql"])
def record_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty record, once on SQLite (one box) and once on PostgreSQL (a cluster)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'record.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture(scope="session")
def migrated_records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A record at the newest schema, made once per session (migrations take a second or two on
    PostgreSQL): a SQLite file and, lazily, a PostgreSQL database (filled in by ``migrated_url``)."""
    path = tmp_path_factory.mktemp("migrated") / "record.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    return {"sqlite": str(path)}


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_records: dict[str, str]) -> str:
    """The URL of a record at the newest schema with no rows, on SQLite and on PostgreSQL: for tests
    of what runs on a record, not of the migrations (those take ``record_url``)."""
    if request.param == "sqlite":
        copy = tmp_path / "record.db"
        shutil.copyfile(migrated_records["sqlite"], copy)
        return f"sqlite:///{copy}"
    server: PostgresServer = request.getfixturevalue("postgres")
    if "postgresql" not in migrated_records:
        url = server.new_database("migrated")
        store = Store(url)
        store.migrate()
        store.close()  # a template database takes no connections
        migrated_records["postgresql"] = url.rsplit("/", 1)[1]
    return server.new_database(template=migrated_records["postgresql"])
