"""Warm wasm worker processes, kept ready so that an exec pays no Python or wasmtime start-up.

``WorkerPool.worker()`` lends one idle worker for one run (starting one if none is idle, up to
``max_workers`` at once; more callers wait). A worker that finished its run cleanly goes back to the
idle list while it holds fewer than ``warm``, else it exits; one whose run was cut short (caller
gone, shell stopped, a protocol fault) is killed, since a guest may still be running in it, and a
fresh one is started in the background. Sequential runs therefore reuse one worker and never pay
for a process start, even in the background.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ...domain.errors import RuntimeFailure
from .protocol import HEADER, MAX_FRAME, WorkerFrameKind, frame, json_frame

log = logging.getLogger(__name__)


class WorkerProcess:
    """One running ``shells.runtime.wasm.worker`` and its framed pipes."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self.reader = BufferedByteReceiveStream(process.stdout)
        self.writer = process.stdin
        self.alive = True

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, argv: Sequence[str], stderr: IO[bytes], ready_timeout_s: float) -> WorkerProcess:
        process = await anyio.open_process(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        worker = cls(process)
        try:
            with anyio.fail_after(ready_timeout_s):
                kind, _ = await worker.recv()
            if kind is not WorkerFrameKind.READY:
                raise RuntimeFailure("A wasm worker started with an unexpected frame.")
        except BaseException:
            worker.kill()
            raise
        return worker

    async def send_run(self, request: dict[str, Any], stdin: bytes, module: bytes | None = None) -> None:
        message = json_frame(WorkerFrameKind.RUN, {**request, "inline_module": module is not None})
        message += frame(WorkerFrameKind.STDIN, stdin)
        if module is not None:
            message += frame(WorkerFrameKind.MODULE, module)
        try:
            await self.writer.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.alive = False
            raise RuntimeFailure("The wasm worker is gone; try the command again.") from None

    async def recv(self) -> tuple[WorkerFrameKind, bytes]:
        try:
            header = await self.reader.receive_exactly(HEADER.size)
            size, kind = HEADER.unpack(header)
            if size > MAX_FRAME:
                raise RuntimeFailure("A wasm worker sent an oversized frame.")
            payload = await self.reader.receive_exactly(size) if size else b""
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ):
            self.alive = False
            raise RuntimeFailure(
                "The wasm worker running the program died; the run is lost. Try again."
            ) from None
        return WorkerFrameKind(kind), payload

    def kill(self) -> None:
        self.alive = False
        with suppress(ProcessLookupError):
            self.process.kill()

    async def close(self) -> None:
        self.kill()
        with anyio.CancelScope(shield=True):
            await self.process.wait()
            await self.process.aclose()


class WorkerPool:
    def __init__(
        self,
        cache_dir: Path,
        modules: dict[str, tuple[Path, str]],
        log_path: Path,
        warm: int = 2,
        max_workers: int = 8,
    ) -> None:
        self.argv = [sys.executable, "-m", "shells.runtime.wasm.worker", "--cache-dir", str(cache_dir)]
        for name, (path, sha) in modules.items():
            self.argv += ["--module", f"{name}={path}={sha}"]
        self.log_path = log_path
        self.warm = warm
        self.idle: list[WorkerProcess] = []
        self.slots = anyio.Semaphore(max_workers)
        self._stderr: IO[bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._all: set[WorkerProcess] = set()

    async def start(self, first_ready_timeout_s: float = 600.0) -> None:
        """Start the warm workers; the first may compile the interpreters (minutes on a busy host)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = self.log_path.open("ab")
        self.idle.append(await self._spawn(first_ready_timeout_s))
        while len(self.idle) < self.warm:
            self.idle.append(await self._spawn())

    async def _spawn(self, ready_timeout_s: float = 60.0) -> WorkerProcess:
        assert self._stderr is not None, "WorkerPool.start() was not called"
        worker = await WorkerProcess.start(self.argv, self._stderr, ready_timeout_s)
        self._all.add(worker)
        return worker

    def _refill(self) -> None:
        if len(self.idle) + len(self._tasks) >= self.warm or self._stderr is None:
            return

        async def spawn() -> None:
            try:
                self.idle.append(await self._spawn())
            except Exception:
                log.exception("starting a wasm worker failed")

        task = asyncio.get_running_loop().create_task(spawn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[WorkerProcess]:
        """A worker for one run: back to the pool if the body ends normally, else killed."""
        async with self.slots:
            worker = self.idle.pop() if self.idle else await self._spawn()
            clean = False
            try:
                yield worker
                clean = worker.alive
            finally:
                if clean and len(self.idle) < self.warm:
                    self.idle.append(worker)
                else:
                    self._all.discard(worker)
                    await worker.close()
                    self._refill()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._all):
            await worker.close()
        self._all.clear()
        self.idle.clear()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def pids(self) -> list[int]:
        return [w.pid for w in self._all]


def exit_message(payload: bytes) -> dict[str, Any]:
    message = json.loads(payload)
    if not isinstance(message, dict):
        raise RuntimeFailure("A wasm worker sent a malformed exit frame.")
    return message
