"""Faults of the local cluster (``make cluster-up``, docs/cluster.md#what-happens-on-failures) that
the other cluster tests do not cause:

- **PostgreSQL restarted** under the running cluster while clients keep both replicas busy (reads,
  file writes, execs, creates, and an exec stream that spans the outage): every answer is a success
  or ``503 record_unavailable`` with ``Retry-After``; both replicas answer again on their own once it
  is back; no shell is lost or left half-made, and every acknowledged create and file write is there.
- **A replica that holds no Lease killed with SIGKILL mid-exec**: the exec ends with ``Unavailable``
  (or finishes), the other replica serves the same shell at once and keeps the singleton duties."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shells.sdk import CommandExit, CommandOutput, ShellsError, Unavailable

from .harness import ServerProcess
from .local_cluster import LocalCluster

DOWN_S = 3.0
"""How long PostgreSQL stays down (a restart of a real server takes about this long)."""
RECOVER_S = 10.0
MAX_CREATED = 2
"""Creates each client has acknowledged before it stops creating (the tenant's quota is shared with
the other cluster tests); refused creates go on."""
"""Both replicas answer requests again within this of PostgreSQL accepting connections."""


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    return local_cluster


@dataclass
class Load:
    """Requests one client sends a replica in a loop while PostgreSQL restarts, and what came back."""

    cluster: LocalCluster
    replica: int
    shell: str
    answers: list[tuple[str, int, str, str | None]] = field(default_factory=list)
    """(what, status, error code, Retry-After) of every answer."""
    created: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)
    """Every file write acknowledged: path → content."""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.cluster.token}"}
        url = self.cluster.replicas[self.replica].url
        with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
            n = 0
            while not self.stop.is_set():
                n += 1
                path = f"/workspace/load-{self.replica}-{n}.txt"
                r = api.put(f"/v1/shells/{self.shell}/files", params={"path": path}, content=str(n).encode())
                if self._answer("write", r):
                    self.written[path] = str(n)
                self._answer("get", api.get(f"/v1/shells/{self.shell}"))
                self._answer("list", api.get("/v1/shells"))
                body = {"command": "echo ok"}
                r = api.post(f"/v1/shells/{self.shell}/exec", params={"wait": "true"}, json=body)
                self._answer("exec", r)
                if n % 3 == 0 and len(self.created) < MAX_CREATED:
                    region = "us" if (n // 3) % 2 else "eu"
                    r = api.post("/v1/shells", json={"language": "bash", "region": region})
                    if self._answer("create", r):
                        self.created.append(r.json()["id"])
                time.sleep(0.05)

    def _answer(self, what: str, r: httpx.Response) -> bool:
        code = r.json()["error"]["code"] if r.status_code >= 400 else ""
        self.answers.append((what, r.status_code, code, r.headers.get("Retry-After")))
        return r.status_code < 300


def _answering(url: str, token: str) -> bool:
    try:
        r = httpx.get(url + "/v1/shells", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        return r.is_success
    except httpx.HTTPError:
        return False


def _unexpected(replica: ServerProcess) -> str:
    """The first unexpected error the replica logged, with its traceback."""
    log = (replica.data_dir / "server.log").read_text(errors="replace")
    at = log.find("unexpected")
    return log[at : at + 6000] if at >= 0 else ""


def _generations(cluster: LocalCluster) -> dict[str, tuple[str, int]]:
    with cluster.client() as client:
        return {n.name: (n.state, n.generation) for n in client.nodes.list()}


def test_a_postgresql_restart_loses_nothing_and_the_replicas_recover_by_themselves(
    cluster: LocalCluster,
) -> None:
    try:
        _restart_postgresql_under_load(cluster)
    finally:  # whatever happened, the shells go: the quota is shared with the other cluster tests
        for shell in cluster.client(0).list():
            with contextlib.suppress(ShellsError):
                shell.kill()


def _restart_postgresql_under_load(cluster: LocalCluster) -> None:
    client = cluster.client(0)
    kept = {region: client.create("python", region=region) for region in ("eu", "us")}
    for region, shell in kept.items():
        shell.files.write("/workspace/before.txt", region)
    nodes_before = _generations(cluster)
    loads = [Load(cluster, replica, kept["eu" if replica == 0 else "us"].id) for replica in (0, 1)]
    threads = [threading.Thread(target=load.run, daemon=True) for load in loads]
    streamed: list[Any] = []

    def stream() -> None:  # one exec stream through replica 1 that runs across the whole outage
        try:
            shell = cluster.client(1).get(kept["us"].id)
            with shell.commands.stream("for i in $(seq 1 40); do echo t$i; sleep 0.25; done") as events:
                streamed.extend(events)
        except Unavailable as e:
            streamed.append(e)

    threads.append(threading.Thread(target=stream, daemon=True))
    try:
        for t in threads:
            t.start()
        time.sleep(1.5)  # some answers with the record up
        cluster.postgres.stop()
        time.sleep(DOWN_S)
        cluster.postgres.start()
        back = time.monotonic()
        for replica in cluster.replicas:
            while not _answering(replica.url, cluster.token):
                assert time.monotonic() - back < RECOVER_S, f"no answer:\n{replica.log_tail()}"
                time.sleep(0.1)
        print(f"both replicas answered {time.monotonic() - back:.2f} s after PostgreSQL was back")
        time.sleep(1.5)  # some answers with the record up again
    finally:
        for load in loads:
            load.stop.set()
        for t in threads:
            t.join(timeout=60)

    answers = [a for load in loads for a in load.answers]
    refused = [a for a in answers if a[1] >= 300]
    assert refused, "no request met the outage: the test did not test it"
    odd = [a for a in refused if a[1:] != (503, "record_unavailable", "1")]
    for replica in cluster.replicas if odd else []:
        print(_unexpected(replica))
    assert not odd, odd
    assert {a[0] for a in answers if a[1] < 300} >= {"write", "get", "list", "exec", "create"}
    print(f"{len(answers)} answers, {len(refused)} of them 503 record_unavailable")

    # the exec stream that spanned the outage finished, or ended with the typed, retryable error
    last = streamed[-1] if streamed else None
    assert isinstance(last, CommandExit | Unavailable), streamed[-3:]
    if isinstance(last, CommandExit):
        out = "".join(e.data for e in streamed if isinstance(e, CommandOutput) and isinstance(e.data, str))
        assert last.exit_code == 0 and out == "".join(f"t{i}\n" for i in range(1, 41))

    # nothing lost, nothing half-made, every acknowledged write there
    created = [s for load in loads for s in load.created]
    listed = {s.id: s for s in cluster.client(1).list()}
    before = {s.id for s in kept.values()}
    assert set(listed) == before | set(created), "a create refused during the outage left a shell"
    assert {s.info.state for s in listed.values()} == {"running"}, {
        s.id: s.info.state_reason for s in listed.values()
    }
    for region, shell in kept.items():
        again = cluster.client(1).get(shell.id)
        assert again.files.read("/workspace/before.txt") == region.encode()
        for load in loads:
            if load.shell == shell.id:
                for path, content in load.written.items():
                    assert again.files.read(path) == content.encode(), path
    assert _generations(cluster) == nodes_before, "a node was declared gone or registered again"
    for shell_id in created:
        assert cluster.client(0).get(shell_id).commands.run("echo up").stdout == "up\n"


def test_killing_a_replica_without_the_lease_mid_exec_leaves_the_other_serving(cluster: LocalCluster) -> None:
    holder = cluster.wait_for_holder()
    other = 1 - holder
    shell = cluster.client(holder).create("python", region="eu")
    try:
        outcome, _ = cluster.kill_mid_exec(other, shell.id)
        assert isinstance(outcome, Unavailable | CommandExit), outcome
        assert cluster.client(holder).get(shell.id).commands.run("echo still here").stdout == "still here\n"
        assert cluster.runs_duties(holder), "the replica holding the Lease lost the duties"
    finally:
        cluster.replicas[other].stop()
        cluster.replicas[other].start()  # back for whatever runs next
        shell.kill()
