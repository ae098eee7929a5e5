"""Fixtures for end-to-end tests: one real server per session, shells that clean up after themselves."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.sdk import Shell, Shells

from .harness import ServerProcess, leak_checked_server
from .rest import ShellMaker, rest_client, shell_maker


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
    with leak_checked_server(data_root / "main", warm_pool=2) as srv:
        yield srv


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[Shells]:
    with server.client() as c:
        yield c


@pytest.fixture
def make_shell(client: Shells) -> Iterator[Callable[..., Shell]]:
    """Create shells for one test; every one of them is deleted when the test ends."""
    created: list[Shell] = []

    def make(language: str = "python", **kwargs: Any) -> Shell:
        shell = client.create(language, **kwargs)
        created.append(shell)
        return shell

    yield make
    for shell in created:
        shell.kill()


@pytest.fixture
def shell(make_shell: Callable[..., Shell]) -> Shell:
    return make_shell()


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """Plain HTTP to the session server as admin, for tests of the REST contract itself."""
    with rest_client(server) as client:
        yield client


@pytest.fixture
def new_shell(api: httpx.Client) -> Iterator[ShellMaker]:
    """``new_shell(**body)`` creates a shell over plain HTTP; each is deleted when the test ends."""
    with shell_maker(api) as make:
        yield make


@pytest.fixture(scope="session")
def built_templates(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every built-in template ready on the session server, built (or imported from the host cache)
    once per test run. python:1 is ready from the server's start."""
    ready: dict[str, dict[str, Any]] = {}
    for name in ("base:1", "node:1", "go:1", "rust:1", "devbox:1"):
        r = api.post("/v1/templates/build", params={"wait": "true"}, json={"builtin": name})
        assert r.status_code == 200, r.text
        ready[name] = r.json()
    return ready
