"""Fixtures for end-to-end tests: one real server per session, shells that clean up after themselves."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell, Shells
from tests.support.fake_internet import FakeInternet

from .harness import ServerProcess, keep_log, serving
from .local_cluster import TEST_LEASE_S, LocalCluster, local_cluster_or_skip
from .rest import ShellMaker, rest_client, shell_maker
from .tenancy import Tenancy


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's outcome on the test, so fixtures can tell whether it failed."""
    report = yield
    item.stash.setdefault(FAILED, False)
    if report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(data_root: Path, request: pytest.FixtureRequest) -> Iterator[StartServer]:
    """``start_server(name, **fields)`` starts a ``ServerProcess`` of its own for this test (fields as
    the dataclass's: ``warm_pool``, ``env``, ``ingress_port``...). When the test ends, each is purged
    and must have left nothing on the host (``harness.serving``); the logs of a failed test's
    servers are kept in ``KEPT_LOGS``."""
    made: list[ServerProcess] = []
    with ExitStack() as stack:

        def start(name: str, **fields: Any) -> ServerProcess:
            server = ServerProcess(data_root / name, **fields)
            made.append(server)
            return stack.enter_context(serving(server))

        try:
            yield start
        finally:
            if request.node.stash.get(FAILED, False):
                for server in made:
                    print(f"server log kept: {keep_log(server, request.node.nodeid)}")


@pytest.fixture(scope="session")
def server(data_root: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The session's server (most tests share it); its log is kept when any test failed."""
    main = ServerProcess(data_root / "main", warm_pool=2)
    with serving(main):
        yield main
        if request.session.testsfailed:
            print(f"server log kept: {keep_log(main, 'session')}")


@pytest.fixture(scope="module")
def tenancy(server: ServerProcess) -> Iterator[Tenancy]:
    """Tenants and their callers on the session server, each a real token minted through REST."""
    t = Tenancy(server)
    yield t
    t.close()


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


@pytest.fixture(params=["container", "microvm"])
def runtime(request: pytest.FixtureRequest) -> str:
    """Each isolation class that has shells with an agent (the microvm one skipped, saying why, on a
    host without it)."""
    missing = MicrovmBackend.available()
    if request.param == "microvm" and missing is not None:
        pytest.skip(f"no microvm class on this host: {missing}")
    return str(request.param)


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """Plain HTTP to the session server as admin, for tests of the REST contract itself."""
    with rest_client(server) as client:
        yield client


@pytest.fixture
def make_rest_shell(api: httpx.Client) -> Iterator[ShellMaker]:
    """``make_rest_shell(**body)`` creates a shell over plain HTTP; each is deleted when the test ends."""
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


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One local cluster (``make cluster-up``'s) for every cluster test module of the session: it
    takes about a minute to start. Its name sorts the tests that use it last (tests/conftest.py)."""
    with local_cluster_or_skip(tmp_path_factory.mktemp("cluster"), TEST_LEASE_S) as running:
        yield running


@pytest.fixture(scope="module")
def internet() -> Iterator[FakeInternet]:
    """The project's own "internet" (tests/support/fake_internet.py), one per test module."""
    with FakeInternet() as net:
        yield net
