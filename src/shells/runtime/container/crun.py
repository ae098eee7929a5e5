"""A thin async wrapper over the crun command line, scoped to one state directory per instance."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...domain.errors import RuntimeFailure


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # "created", "running", "paused", "stopped"
    pid: int


class Crun:
    def __init__(self, state_root: Path, binary: str = "crun") -> None:
        self.state_root = state_root
        self.binary = binary

    async def _run(
        self, *args: str, stdout_fd: int | None = None, check: bool = True
    ) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--root",
            str(self.state_root),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout_fd if stdout_fd is not None else asyncio.subprocess.PIPE,
            stderr=stdout_fd if stdout_fd is not None else asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        rc = proc.returncode if proc.returncode is not None else -1
        if check and rc != 0:
            raise RuntimeFailure(
                f"crun {args[0]} failed (exit {rc}): {(err or out or b'').decode(errors='replace').strip()}",
                {"step": f"crun {args[0]}"},
            )
        return rc, out or b"", err or b""

    async def run_detached(self, container_id: str, bundle: Path, log_path: Path) -> None:
        """Create and start the container; its stdout/stderr go to ``log_path`` (appended)."""
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            rc, _, _ = await self._run(
                "run", "--detach", "--bundle", str(bundle), container_id, stdout_fd=fd, check=False
            )
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
