"""Fixtures and helpers of the OCI image tests: a local registry with the test images and a server
that trusts its CA (both per test module)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci_registry import PASSWORD, USER, Registry, local_registry

from .harness import ServerProcess, running_server
from .rest import ShellMaker, exec_wait, rest_client, shell_maker

CREDS = {"username": USER, "password": PASSWORD}


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with local_registry() as reg:
        yield reg


@pytest.fixture(scope="module")
def oci_server(
    data_root: Path, registry: Registry, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    env = {"SHELLS_REGISTRY_CA_FILE": str(registry.ca_file)}
    where = data_root / f"oci-{request.module.__name__.rpartition('.')[2]}"
    with running_server(where, warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(oci_server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(oci_server) as c:
        yield c


@pytest.fixture
def make(api: httpx.Client) -> Iterator[ShellMaker]:
    with shell_maker(api) as m:
        yield m


def import_image(api: httpx.Client, registry: Registry, repo: str, name: str, **extra: Any) -> httpx.Response:
    body = {"image": registry.ref(repo), "name": name, "credentials": CREDS, **extra}
    return api.post("/v1/templates/import", params={"wait": "true"}, json=body, timeout=300)


def pool_templates(server: ServerProcess) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "storage" / "pool" / "templates").iterdir())


def run(api: httpx.Client, shell_id: str, command: str) -> str:
    out = exec_wait(api, shell_id, command)
    assert out["exit_code"] == 0, out
    return str(out["stdout"])


# podman, the other runtime an exported image must start in ----------------------------------------
# This host's root lacks CAP_SYS_RESOURCE, so podman's default rlimits (above the hard limit) fail.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


@contextmanager
def podman(registry: Registry) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``podman(*args)`` with its own storage in a temporary directory (removed afterwards) that trusts
    the registry's CA and holds its credentials."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman (scripts/install-system-deps.sh)")
    d = Path(tempfile.mkdtemp(prefix="shells-podman-", dir="/var/tmp"))
    (d / "certs").mkdir()
    shutil.copy(registry.ca_file, d / "certs" / "ca.crt")
    base = ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*base, *args]
        if args[0] == "pull":
            argv += ["--cert-dir", str(d / "certs"), "--creds", f"{USER}:{PASSWORD}"]
        elif args[0] == "run":
            argv[len(base) + 1 : len(base) + 1] = ["--rm", "--network=none", *ULIMITS]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)

    try:
        yield run
    finally:
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, check=False)
        shutil.rmtree(d, ignore_errors=True)
