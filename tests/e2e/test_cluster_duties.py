"""The singleton duties follow the ``shells-control`` Lease: two control-plane processes over one
PostgreSQL record and a real Kubernetes API server; exactly one runs the duties, and when it is
killed with SIGKILL the other takes them over within one lease period (here: the time-to-live sweep
deletes a shell whose time ran out, on the replica that now holds the Lease)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.kube import ADMIN_TOKEN, KubeAPI
from tests.support.postgres import PostgresServer

from .local_cluster import singleton_duties

LEASE_S = 3.0
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, root: Path, args: list[str]) -> None:
        self.root, self.port = root, _free_port()
        self.log = (root.parent / f"{root.name}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.control_replica", str(root), str(self.port), *args],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/v1/info", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def token(self) -> str:
        return (self.root / "data" / "admin-token").read_text(encoding="utf-8").strip()

    def duties(self) -> bool:
        """Whether this replica says it runs the singleton duties (``/metrics``)."""
        return singleton_duties(self.url, self.token())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _until(predicate: object, timeout_s: float, what: str) -> float:
    assert callable(predicate)
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)
    return time.monotonic() - start


@pytest.fixture
def replicas(tmp_path: Path, postgres: PostgresServer, kube_api: KubeAPI) -> Iterator[list[Replica]]:
    with two_replicas(tmp_path, postgres.new_database("duties"), kube_api) as made:
        yield made


@contextmanager
def two_replicas(root: Path, database_url: str, kube_api: KubeAPI) -> Iterator[list[Replica]]:
    """Replicas ``a`` and ``b`` over one record and API server, sharing one secrets key as a real
    deployment's do (the record's egress CA is sealed with it), started one after the other,
    stopped at the end."""
    token_file = root / "kube-token"
    token_file.write_text(ADMIN_TOKEN, encoding="utf-8")
    key_file = root / "secrets.key"
    args = [database_url, kube_api.url, str(token_file), kube_api.ca_file, str(LEASE_S), str(key_file)]
    first = Replica(root / "a", args)
    made = [first]
    try:
        _until(first.ready, 60, "replica a starting")  # it migrates the record first
        made.append(Replica(root / "b", args))
        _until(made[1].ready, 60, "replica b starting")
        yield made
    finally:
        for replica in made:
            replica.stop()


def test_one_replica_runs_the_duties_and_a_killed_holder_hands_them_over(replicas: list[Replica]) -> None:
    _until(lambda: any(r.duties() for r in replicas), LEASE_S + 5, "a replica taking the duties")
    for _ in range(10):  # a second of samples: exactly one holder
        assert sum(r.duties() for r in replicas) == 1
        time.sleep(0.1)
    holder, other = replicas if replicas[0].duties() else replicas[::-1]
    headers = {"Authorization": f"Bearer {other.token()}"}
    os.kill(holder.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    made = httpx.post(other.url + "/v1/shells", headers=headers, json={"language": "python", "timeout_s": 1})
    assert made.status_code == 201, made.text
    shell = made.json()["id"]
    took = _until(other.duties, LEASE_S + 3, "the other replica taking the duties")
    assert time.monotonic() - killed <= LEASE_S + LEASE_S / 6 + 1.5, f"duties moved after {took:.1f} s"

    def expired() -> bool:
        return httpx.get(f"{other.url}/v1/shells/{shell}", headers=headers).status_code == 404

    _until(expired, 5, "the new holder's time-to-live sweep deleting the shell")
