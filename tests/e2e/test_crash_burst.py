"""``kill -9`` of the server in the middle of a burst of concurrent work, at several moments.

Clients create, exec, write files, snapshot, pause, resume, fork and delete container and microvm
shells at once; the server dies under them; it starts again on the same data dir. Then every shell
of the record is usable or explicitly ``failed`` with a reason (none stuck), every write and
snapshot the server acknowledged exists, and the host holds nothing that no record claims.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.microvm.images import snapshot_names
from shells.settings import Settings
from shells.store.repository import Store

from .harness import ServerProcess, running_server

KILL_AFTER_S = (0.5, 1.5, 3.0)
"""Moments of the burst when the server is killed, one round each, on the same data dir."""

WORKERS = 6
REQUEST_TIMEOUT_S = 120.0


@dataclass
class Ledger:
    """What the server acknowledged during a burst (a 2xx answer), and so must still hold."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    shells: dict[str, str] = field(default_factory=dict)
    """Shell id → runtime, for every shell the burst may touch."""
    writes: dict[tuple[str, str], str] = field(default_factory=dict)
    snapshots: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    def add_shell(self, shell: dict[str, Any]) -> None:
        with self.lock:
            self.shells[shell["id"]] = shell["runtime"]

    def pick(self, rng: random.Random, runtime: str | None = None) -> str | None:
        with self.lock:
            live = [s for s, r in self.shells.items() if s not in self.deleted and runtime in (None, r)]
        return rng.choice(live) if live else None


class Burst:
    """Worker threads doing random work until the server stops answering."""

    def __init__(self, server: ServerProcess, ledger: Ledger, seed: int) -> None:
        self.server, self.ledger, self.seed = server, ledger, seed
        self.threads = [
            threading.Thread(target=self._work, args=(seed * 100 + n,), daemon=True) for n in range(WORKERS)
        ]
        self.counter = 0
        self.counter_lock = threading.Lock()

    def __enter__(self) -> Burst:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S + 10)
        assert not any(t.is_alive() for t in self.threads), "a client never got an answer or an error"

    def _next(self) -> int:
        with self.counter_lock:
            self.counter += 1
            return self.counter

    def _work(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.server.token}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
            while True:
                step = rng.choice(self._steps())
                try:
                    step(api, rng)
                except httpx.TransportError:
                    return  # the server is gone: the round's kill happened

    def _steps(self) -> list[Callable[[httpx.Client, random.Random], None]]:
        return [
            self._create,
            self._write,
            self._write,
            self._exec,
            self._snapshot,
            self._pause,
            self._resume,
            self._fork,
            self._delete,
        ]

    def _create(self, api: httpx.Client, rng: random.Random) -> None:
        runtime = rng.choice(["container", "container", "microvm"])
        r = api.post("/v1/shells", json={"language": "python", "runtime": runtime})
        if r.status_code == 201:
            self.ledger.add_shell(r.json())

    def _write(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng)
        if shell is None:
            return
        path, content = f"/workspace/w{self._next()}.txt", f"acknowledged {rng.random()}"
        r = api.put(f"/v1/shells/{shell}/files", params={"path": path}, content=content.encode())
        if r.status_code == 200:
            with self.ledger.lock:
                self.ledger.writes[(shell, path)] = content

    def _exec(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng)
        if shell is not None:
            api.post(
                f"/v1/shells/{shell}/exec",
                params={"wait": "true"},
                json={"command": "echo x >> /workspace/log"},
            )

    def _snapshot(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng)
        if shell is None:
            return
        r = api.post(f"/v1/shells/{shell}/actions/snapshot", json={})
        if r.status_code == 200:
            with self.ledger.lock:
                self.ledger.snapshots.add(r.json()["result"]["snapshot"]["id"])

    def _pause(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng, "microvm")
        if shell is not None:
            api.post(f"/v1/shells/{shell}/actions/pause", json={})

    def _resume(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng, "microvm")
        if shell is not None:
            api.post(f"/v1/shells/{shell}/actions/resume", json={})

    def _fork(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng, "microvm")
        if shell is None:
            return
        r = api.post(f"/v1/shells/{shell}/actions/fork", json={"count": 2})
        if r.status_code == 200:
            for child in r.json()["result"]["shells"]:
                self.ledger.add_shell(child)

    def _delete(self, api: httpx.Client, rng: random.Random) -> None:
        shell = self.ledger.pick(rng)
        if shell is None or rng.random() < 0.5:  # keep most shells, so writes pile up to check
            return
        if api.delete(f"/v1/shells/{shell}").status_code == 204:
            with self.ledger.lock:
                self.ledger.deleted.add(shell)


@dataclass
class Record:
    shells: dict[str, tuple[str, str]]
    """Every shell a user owns that is not deleted: id → (state, reason)."""
    pooled: set[str]
    """The warm pool's shells (no user sees them, but they are the record's)."""
    snapshots: set[str]


def _record(data_dir: Path) -> Record:
    store = Store(f"sqlite:///{data_dir / 'shells.db'}")
    try:
        return Record(
            {s.id: (s.state.value, s.state_reason) for s in store.list_shells(None)},
            {s.id for s in store.list_shells(None, pooled=True)},
            store.all_snapshot_ids(),
        )
    finally:
        store.close()


def _host_objects(data_dir: Path) -> tuple[set[str], set[str]]:
    """The shells and snapshots this instance has on the host: subvolumes, VM disks, crun
    containers and QEMU processes (shells); snapshot subvolumes and VM images (snapshots)."""
    settings = Settings(data_dir=data_dir)
    pool, vms = data_dir / "storage" / "pool", data_dir / "microvm"

    def names(d: Path, skip: tuple[str, ...] = ()) -> set[str]:
        return {p.name for p in d.iterdir() if not p.name.startswith(skip)} if d.exists() else set()

    crun = subprocess.run(
        ["crun", "--root", str(settings.run_dir / "crun"), "list", "-q"],
        check=True,
        capture_output=True,
        text=True,
    )
    shells = names(pool / "shells") | names(vms / "shells") | set(crun.stdout.split())
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].startswith(b"qemu-system") and str(data_dir).encode() in b" ".join(argv):
            # Whose QEMU it is: the directory of its pid file (a shell's id, or a scratch machine's).
            shells.add(Path(argv[argv.index(b"-pidfile") + 1].decode()).parent.name)
    snapshots = names(pool / "snapshots") | snapshot_names(vms / "images")
    return shells, snapshots


def _wait_for_no_orphans(data_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        record = _record(data_dir)
        shells, snapshots = _host_objects(data_dir)
        stray = (shells - set(record.shells) - record.pooled) | (snapshots - record.snapshots)
        if not stray:
            return
        assert time.monotonic() < deadline, f"host objects no record claims: {sorted(stray)}"
        time.sleep(0.5)


def _check_usable(api: httpx.Client, shell_id: str, state: str, reason: str) -> None:
    assert state != "creating", f"{shell_id} is stuck in 'creating' after the restart"
    if state == "failed":
        assert reason, f"{shell_id} failed without a reason"
        return
    if state == "lost":
        pytest.fail(f"{shell_id} was lost: {reason}")
    if state == "stopped":
        r = api.post(f"/v1/shells/{shell_id}/actions/start", json={})
        assert r.status_code == 200, f"{shell_id} stopped ({reason}) and cannot start: {r.text}"
    r = api.post(f"/v1/shells/{shell_id}/exec", params={"wait": "true"}, json={"command": "echo ok"})
    runtime = api.get(f"/v1/shells/{shell_id}").json().get("runtime")
    assert r.status_code == 200 and r.json()["stdout"] == "ok\n", f"{shell_id} ({runtime}, {state}): {r.text}"


def _check_after_restart(server: ServerProcess, ledger: Ledger) -> None:
    record = _record(server.data_dir)
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
        for shell_id, (state, reason) in sorted(record.shells.items()):
            _check_usable(api, shell_id, state, reason)
        for (shell_id, path), content in sorted(ledger.writes.items()):
            if shell_id in ledger.deleted:
                continue
            r = api.get(f"/v1/shells/{shell_id}/files", params={"path": path})
            assert r.status_code == 200 and r.text == content, (
                f"acknowledged write {shell_id}:{path} lost: {r.status_code} {r.text}"
            )
    missing = ledger.snapshots - record.snapshots
    assert not missing, f"acknowledged snapshots lost: {sorted(missing)}"
    _wait_for_no_orphans(server.data_dir)


@pytest.fixture(scope="module")
def crash_server(data_root: Path) -> Iterator[ServerProcess]:
    with running_server(data_root / "crash-burst", warm_pool=1) as srv:
        yield srv


@pytest.mark.timeout(1800)
def test_kill_9_in_a_burst_loses_nothing_and_leaves_nothing_stuck(crash_server: ServerProcess) -> None:
    ledger = Ledger()
    headers = {"Authorization": f"Bearer {crash_server.token}"}
    with httpx.Client(base_url=crash_server.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
        for runtime in ("container", "container", "microvm", "microvm"):
            r = api.post("/v1/shells", json={"language": "python", "runtime": runtime})
            assert r.status_code == 201, r.text
            ledger.add_shell(r.json())
    for round_no, kill_after in enumerate(KILL_AFTER_S):
        with Burst(crash_server, ledger, seed=round_no):
            time.sleep(kill_after)
            crash_server.kill9()
        crash_server.start()
        try:
            _check_after_restart(crash_server, ledger)
        except AssertionError as e:
            tail = crash_server.log_tail(6000)
            raise AssertionError(
                f"round {round_no} (killed {kill_after} s into the burst): {e}\n{tail}"
            ) from e
    assert ledger.writes, "the burst acknowledged no write: the test proved nothing"
    _check_snapshots_restore(crash_server, ledger.snapshots)


def _check_snapshots_restore(server: ServerProcess, acknowledged: set[str]) -> None:
    """One acknowledged snapshot of each class still makes a working shell (once the burst's shells
    are gone: they may have used the tenant's whole quota)."""
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
        for shell in api.get("/v1/shells").json()["shells"]:
            assert api.delete(f"/v1/shells/{shell['id']}").status_code == 204
        snaps = {
            s["runtime"]: s for s in api.get("/v1/snapshots").json()["snapshots"] if s["id"] in acknowledged
        }
        for snap in snaps.values():
            body = {"language": snap["language"], "runtime": snap["runtime"], "snapshot": snap["id"]}
            r = api.post("/v1/shells", json=body)
            assert r.status_code == 201, r.text
            _check_usable(api, r.json()["id"], r.json()["state"], r.json()["state_reason"])
            assert api.delete(f"/v1/shells/{r.json()['id']}").status_code == 204
