"""A thin async wrapper over the crun command line, scoped to one state directory per instance."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio

from ...domain.errors import RuntimeFailure


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # "created", "running", "paused", "stopped"
    pid: int


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
        in_own_dev = 'mount --bind "$0" /dev && exec "$@"'
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
    """Run ``argv`` with stdin /dev/null, stdout and stderr on ``log_fd`` and ``fd3`` as its fd 3.

    asyncio's subprocesses can keep an fd but not renumber it; posix_spawn's file actions can, and
    are safe in a threaded process (no Python code runs between fork and exec). Every other fd of the
    server is close-on-exec. The copy is taken at 10 or above so the dup2 onto 3 always happens (a
    dup2 onto itself would keep close-on-exec set).
    """
    high = fcntl.fcntl(fd3, fcntl.F_DUPFD_CLOEXEC, 10)
    try:
        pid = os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_DUP2, high, 3),
            ],
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    finally:
        os.close(high)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
