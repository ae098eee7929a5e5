"""Fixtures for end-to-end tests: one real server per session, shells that clean up after themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import ShellNotFound
from shells.sdk import Shells
from shells.settings import Settings

from .harness import ServerProcess, host_leaks


def _host_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (crun, btrfs, idmapped mounts)"
    for tool in ("crun", "mkfs.btrfs", "debootstrap"):
        if shutil.which(tool) is None:
            return f"needs {tool} (run scripts/install-system-deps.sh)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _host_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"end-to-end tests cannot run in CI: {reason}")
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="shells-e2e-", dir="/var/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server(data_root: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(data_root / "main", warm_pool=2)
    srv.start()
    yield srv
    srv.purge()
    instance = Settings(data_dir=srv.data_dir).instance_id
    leaks = host_leaks(srv.data_dir, instance)
    assert not leaks, f"host objects left behind: {leaks}"


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[Shells]:
    with server.client() as c:
        yield c


@pytest.fixture
def make_shell(client: Shells) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create shells for one test; every one of them is deleted when the test ends."""
    created: list[str] = []

    def make(language: str = "python", **kwargs: Any) -> dict[str, Any]:
        shell = client.create(language, **kwargs)
        created.append(shell["id"])
        return shell

    yield make
    for shell_id in created:
        with contextlib.suppress(ShellNotFound):
            client.delete(shell_id)


@pytest.fixture
def shell(make_shell: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_shell()
