"""A node agent on its own "machine": a network namespace with its own address on a test bridge,
so every call from the control plane crosses a link (veth) and a bridge as it would between hosts."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shells.settings import Settings

from .harness import free_port, host_leaks

SHELLS = [sys.executable, "-m", "shells.cli.main"]
START_TIMEOUT_S = 300.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class NodeMachine:
    netns: str
    address: str
    port: int
    data_dir: Path
    secret_file: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def run(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.inside, *argv], capture_output=True, check=False)

    @property
    def inside(self) -> list[str]:
        """Runs a command in the node's netns only (``ip netns exec`` would give it a mount
        namespace of its own too, hiding the node's mounts from the host and from its purge)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--"]

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        """Start the node agent ``name`` (``env``: more settings, e.g. its Kubernetes API)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / f"{self.netns}.log").open("ab")
        self.proc = subprocess.Popen(
            [*self.inside, *SHELLS, "node", "--listen", f"{self.address}:{self.port}",
             "--data-dir", str(self.data_dir), "--secret-file", str(self.secret_file), "--name", name],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ) | (env or {}), start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node agent exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:  # any answer (to an unsigned call: 401) says the node serves
                httpx.post(self.url + "/v1/call/node/hello", timeout=1)
                return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"node agent did not answer:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = self.data_dir.parent / f"{self.netns}.log"
        return path.read_bytes()[-4000:].decode(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None


@contextmanager
def node_machine(root: Path, secret_file: Path) -> Iterator[NodeMachine]:
    """A machine for a node agent: its own netns at 172.30.N.2 on a fresh bridge (172.30.N.1 here);
    afterwards the node is purged, the links and netns deleted, and nothing of it may remain."""
    tag = secrets.token_hex(3)
    subnet = 1 + int(tag, 16) % 250
    bridge, veth, netns = f"shnb{tag}", f"shnv{tag}", f"shnn{tag}"
    machine = NodeMachine(netns, f"172.30.{subnet}.2", free_port(), root / "node", secret_file)
    ip("netns", "add", netns)
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"172.30.{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", bridge, "up")
        ip("-n", netns, "addr", "add", f"{machine.address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "route", "add", "default", "via", f"172.30.{subnet}.1")
        yield machine
    finally:
        machine.stop()
        purged = machine.run(*SHELLS, "purge", "--data-dir", str(machine.data_dir), "--yes")
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    assert purged.returncode == 0, purged.stderr.decode(errors="replace")
    leaks = host_leaks(machine.data_dir, Settings(data_dir=machine.data_dir).instance_id)
    assert not leaks, f"the node left host objects behind: {leaks}"


def cluster_secret(root: Path) -> Path:
    path = root / "cluster-secret"
    path.write_text(secrets.token_urlsafe(48))
    return path
