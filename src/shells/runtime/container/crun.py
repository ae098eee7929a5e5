"""A thin async wrapper over the crun command line, scoped to one state directory per instance."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio

from ...domain.errors import RuntimeFailure


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # "created", "running", "paused", "stopped"
    pid: int


STDIN_TO_FD3 = "3<&0 </dev/null"
"""The redirections of the ``exec`` that starts crun: the socket ``_spawn_and_wait`` gave as stdin
becomes fd 3, stdin /dev/null (``sh`` names single-digit fds only, so it cannot take it from higher)."""


class Crun:
    def __init__(self, state_root: Path, *, devices: Path, binary: str = "crun") -> None:
        self.state_root = state_root
        self.devices = devices
        """The directory ``crun run`` sees as /dev, to bind device nodes from (``host_view.py``)."""
        self.binary = binary

    async def _run(self, *args: str, check: bool = True) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--root",
            str(self.state_root),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        rc = proc.returncode if proc.returncode is not None else -1
        if check and rc != 0:
            raise RuntimeFailure(
                f"crun {args[0]} failed (exit {rc}): {(err or out or b'').decode(errors='replace').strip()}",
                {"step": f"crun {args[0]}"},
            )
        return rc, out or b"", err or b""

    async def run_detached(self, container_id: str, bundle: Path, log_path: Path, pass_fd: int) -> None:
        """Create and start the container; its stdout/stderr go to ``log_path`` (appended) and its first
        process gets ``pass_fd`` as fd 3 (``--preserve-fds 1``).

        crun runs in a mount namespace of its own whose /dev is ``self.devices``, so the device nodes it
        binds into the container are not the host's devtmpfs (~4 ms: unshare, sh and mount).
        """
        crun = [self.binary, "--root", str(self.state_root), "run", "--detach", "--preserve-fds", "1"]
        crun += ["--bundle", str(bundle), container_id]
        in_own_dev = f'mount --bind "$0" /dev </dev/null && exec "$@" {STDIN_TO_FD3}'
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", in_own_dev]
        argv += [str(self.devices), *crun]
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            # crun run --detach returns once the container runs (tens of ms): a worker thread may wait.
            rc = await anyio.to_thread.run_sync(_spawn_and_wait, argv, fd, pass_fd)
        finally:
            os.close(fd)
        if rc != 0:
            tail = log_path.read_bytes()[-2000:].decode(errors="replace").strip()
            raise RuntimeFailure(f"crun run failed (exit {rc}): {tail}", {"step": "crun run"})

    async def kill_and_delete(self, container_id: str) -> None:
        """End every process of the container and forget it. Idempotent."""
        await self._run("delete", "--force", container_id, check=False)

    async def pause(self, container_id: str) -> None:
        await self._run("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self._run("resume", container_id)

    async def version(self) -> str:
        """``crun 1.8.1`` (the first line of ``crun --version``)."""
        _, out, _ = await self._run("--version")
        return out.decode(errors="replace").splitlines()[0].replace(" version ", " ").strip()

    async def list(self) -> list[ContainerState]:
        if not self.state_root.exists():
            return []
        _, out, _ = await self._run("list", "--format", "json")
        items = json.loads(out or b"[]") or []
        return [ContainerState(i["id"], i.get("status", ""), int(i.get("pid", 0))) for i in items]


def _spawn_and_wait(argv: list[str], log_fd: int, fd3: int) -> int:
    """Run ``argv`` with stdout and stderr on ``log_fd``, ``fd3`` as its stdin (the shell of
    ``run_detached`` moves it to fd 3 before it execs crun: ``STDIN_TO_FD3``), and no other fd.

    Nothing of the server may reach crun, which runs as root on the host: ``close_fds`` closes every
    other descriptor in the child, whatever its close-on-exec flag, so a descriptor a library opened
    without it (libnftables' netlink sockets did) or one another thread holds inheritable for a moment
    (uvloop's pipes of a child it is starting) stays here. subprocess can renumber only stdin, stdout
    and stderr, hence the move through stdin; it is safe in a threaded process (no Python code runs
    between fork and exec) and restores SIGPIPE and SIGXFSZ to their defaults.
    """
    proc = subprocess.Popen(argv, stdin=fd3, stdout=log_fd, stderr=log_fd, close_fds=True)
    return proc.wait()
