"""A real Shells server in a subprocess, treated as a product: it starts, restarts, is killed, and
leaves nothing behind on the host when it is purged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shells.runtime.host import cgroups, uids
from shells.runtime.network.addressing import gateway_link, port_prefix
from shells.runtime.network.ruleset import table_name
from shells.sdk import Shells
from shells.settings import Settings

SHELLS = [sys.executable, "-m", "shells.cli.main"]
START_TIMEOUT_S = 600.0  # the first start on a fresh machine builds the base template


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    ingress_port: int | None = field(default_factory=free_port)
    """``SHELLS_INGRESS_PORT``; None starts the server as the README does, without it."""
    warm_pool: int = 2
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the server and its purge (``SHELLS_*`` settings, the PYTHONPATH of
    another build)."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text(encoding="utf-8").strip()

    @property
    def record_url(self) -> str:
        """Where this server keeps its record (``SHELLS_DATABASE_URL``, else its SQLite file)."""
        return self.env.get("SHELLS_DATABASE_URL") or f"sqlite:///{self.data_dir / 'shells.db'}"

    def client(self, token: str | None = None) -> Shells:
        return Shells(self.url, token or self.token)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *SHELLS,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--warm-pool",
                str(self.warm_pool),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self._ingress_env(), **self.env},
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/v1/info", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def _ingress_env(self) -> dict[str, str]:
        return {} if self.ingress_port is None else {"SHELLS_INGRESS_PORT": str(self.ingress_port)}

    def log_tail(self, n: int = 4000) -> str:
        path = self.data_dir / "server.log"
        return path.read_bytes()[-n:].decode(errors="replace") if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def wait_pool_ready(self, timeout_s: float = 120.0) -> None:
        """Wait until the warm pool is full, so the measured creates claim pre-started shells."""
        from shells.store.repository import Store

        store = Store(self.record_url)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                ready = [s for s in store.list_shells(None, pooled=True) if s.state == "running"]
                if len(ready) >= self.warm_pool:
                    return
                time.sleep(0.1)
        finally:
            store.close()
        raise RuntimeError("the warm pool did not fill in time")

    def purge(self) -> None:
        self.stop()
        subprocess.run(
            [*SHELLS, "purge", "--data-dir", str(self.data_dir), "--yes"],
            check=True,
            capture_output=True,
            env=os.environ | self.env,
        )


STORAGE_IMAGE_SUFFIXES = (".img", ".qcow2", ".ext4", ".partial")


def storage_images(data_dir: Path) -> list[Path]:
    """Disk images an instance keeps in its data dir (the btrfs pool's, the microvm class's)."""
    if not data_dir.exists():
        return []
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and p.name.endswith(STORAGE_IMAGE_SUFFIXES))


def host_leaks(data_dir: Path, instance: str) -> list[str]:
    """Everything of this instance still on the host: mounts, cgroups, uid claims, nft table, links
    (named as the runtime names them)."""
    leaks: list[str] = []
    settings = Settings(data_dir=data_dir)
    roots = (str(data_dir.resolve()), str(settings.run_dir))
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(roots):
            leaks.append(f"mount {mount_point}")
    for controller in cgroups.CGROUP_ROOT.iterdir():
        if (controller / cgroups.instance_cgroup(instance)).exists():
            leaks.append(f"cgroup {controller.name}/{cgroups.instance_cgroup(instance)}")
    if uids.DEFAULT_DIR.exists():
        for claim in uids.DEFAULT_DIR.iterdir():
            try:  # another instance's claim may go between the listing and the read
                held = claim.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            if instance in held:
                leaks.append(f"uid claim {claim.name}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    leaks += [f"nft {line}" for line in tables.splitlines() if line.endswith(table_name(instance))]
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    )
    ours = (port_prefix(instance), gateway_link(instance))
    leaks += [f"link {link['ifname']}" for link in links if link["ifname"].startswith(ours)]
    leaks += [f"storage image {path}" for path in storage_images(data_dir)]
    microvm_run = str(settings.run_dir / "microvm")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("qemu-system") and (microvm_run in cmdline or roots[0] in cmdline):
                leaks.append(f"qemu pid {proc.name}")
            if "rclone" in cmdline and str(settings.run_dir) in cmdline:  # a bucket mount's FUSE process
                leaks.append(f"rclone pid {proc.name}")
            if "virtiofsd" in cmdline and str(settings.run_dir) in cmdline:  # a microvm's share
                leaks.append(f"virtiofsd pid {proc.name}")
    return leaks


KEPT_LOGS = Path("/var/tmp/shells-e2e-logs")
"""Where the server log of a failed test is kept (the data dirs go when the session ends)."""


def keep_log(server: ServerProcess, label: str) -> Path | None:
    """Copy the server's log where it outlives the session; its path (None when there is no log)."""
    log = server.data_dir / "server.log"
    if not log.exists():
        return None
    KEPT_LOGS.mkdir(parents=True, exist_ok=True)
    kept = KEPT_LOGS / f"{label.replace('/', '_').replace('::', '--')}--{server.data_dir.name}.log"
    shutil.copyfile(log, kept)
    return kept


@contextmanager
def serving(server: ServerProcess, label: str = "") -> Iterator[ServerProcess]:
    """The one way a test runs a server: start ``server``; when the block ends, purge it and fail if
    it left anything of its own on the host (``host_leaks``). If the block raised (a failed test),
    the server's log is kept in KEPT_LOGS first."""
    try:
        server.start()  # inside: a server that fails to start has set up the host too
        yield server
    except BaseException:
        print(f"server log kept: {keep_log(server, label or server.data_dir.name)}")
        raise
    finally:
        server.purge()
    leaks = host_leaks(server.data_dir, Settings(data_dir=server.data_dir).instance_id)
    assert not leaks, f"host objects left behind: {leaks}"


@contextmanager
def running_server(
    data_dir: Path, warm_pool: int = 2, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """``serving`` a new ``ServerProcess`` (for tests that name a data dir of their own)."""
    with serving(ServerProcess(data_dir, warm_pool=warm_pool, env=env or {})) as server:
        yield server
