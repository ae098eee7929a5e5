"""A node agent on its own "machine": a network namespace with its own address on a test bridge,
so every call from the control plane crosses a link (veth) and a bridge as it would between hosts."""

from __future__ import annotations

import contextlib
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

    @property
    def gateway(self) -> str:
        """This machine's address on the node's bridge: where the node reaches services of the host."""
        return self.address.rsplit(".", 1)[0] + ".1"

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        """``shells node`` in the netns, with ``env`` (``SHELLS_REGION``, ``SHELLS_CLASSES``...) added."""
        self.launch(name, env)
        self.wait_serving()

    def launch(self, name: str, env: dict[str, str] | None = None) -> None:
        """Start the node agent without waiting for it (several machines start side by side)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / f"{self.netns}.log").open("ab")
        self.proc = subprocess.Popen(
            [*self.inside, *SHELLS, "node", "--listen", f"{self.address}:{self.port}",
             "--data-dir", str(self.data_dir), "--secret-file", str(self.secret_file), "--name", name],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | (env or {}), start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_serving(self) -> None:
        assert self.proc is not None
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


@dataclass(frozen=True)
class Bridge:
    """A test bridge standing for the link between machines: ``172.30.N.1/24`` is this host's end."""

    name: str
    subnet: int

    def address(self, host: int) -> str:
        return f"172.30.{self.subnet}.{host}"


@contextmanager
def bridge() -> Iterator[Bridge]:
    """A fresh bridge on a /24 of 172.30/16 no other bridge here uses; deleted afterwards."""
    tag = secrets.token_hex(3)
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    subnet = next(n for k in range(250) if f"172.30.{(n := 1 + (int(tag, 16) + k) % 250)}." not in used)
    made = Bridge(f"shnb{tag}", subnet)
    ip("link", "add", made.name, "type", "bridge")
    try:
        ip("addr", "add", f"{made.address(1)}/24", "dev", made.name)
        ip("link", "set", made.name, "up")
        yield made
    finally:
        subprocess.run(["ip", "link", "del", made.name], capture_output=True, check=False)


@contextmanager
def node_machine(
    root: Path, secret_file: Path, on: Bridge | None = None, host: int = 2
) -> Iterator[NodeMachine]:
    """A machine for a node agent: its own netns at ``172.30.N.host`` on bridge ``on`` (a fresh one
    of its own when None); afterwards the node is purged, its link and netns deleted, and nothing of
    it may remain."""
    with contextlib.ExitStack() as stack:
        link = on or stack.enter_context(bridge())
        tag = secrets.token_hex(3)
        veth, netns = f"shnv{tag}", f"shnn{tag}"
        machine = NodeMachine(netns, link.address(host), free_port(), root / "node", secret_file)
        ip("netns", "add", netns)
        try:
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            ip("link", "set", veth, "master", link.name, "up")
            ip("-n", netns, "addr", "add", f"{machine.address}/24", "dev", "eth0")
            ip("-n", netns, "link", "set", "eth0", "up")
            ip("-n", netns, "link", "set", "lo", "up")
            ip("-n", netns, "route", "add", "default", "via", link.address(1))
            yield machine
        finally:
            machine.stop()
            purged = machine.run(*SHELLS, "purge", "--data-dir", str(machine.data_dir), "--yes")
            subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    assert purged.returncode == 0, purged.stderr.decode(errors="replace")
    leaks = host_leaks(machine.data_dir, Settings(data_dir=machine.data_dir).instance_id)
    assert not leaks, f"the node left host objects behind: {leaks}"


def cluster_secret(root: Path) -> Path:
    path = root / "cluster-secret"
    path.write_text(secrets.token_urlsafe(48))
    return path
