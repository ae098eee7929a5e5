"""A warm wasm worker: one process with its wasmtime Engine and the interpreters loaded, running one
guest program at a time for the server (``python -m shells.runtime.wasm.worker``).

Why a process: importing wasmtime and loading the compiled interpreters costs a Python process
~0.3 s, so the server keeps a few of these ready and a create or exec pays none of it. The server
kills a worker to stop a program early (client gone, shell stopped); the worker never outlives its
stdin. It exits with ``os._exit``: wasmtime's runtime threads can panic during a normal interpreter
shutdown.

Each run gets a fresh Store with the request's limits: an epoch deadline (a ticker thread advances
the engine's epoch every ``TICK_S``), a memory and table limit, an output cap, explicit argv and env
(nothing inherited), stdin from a private temp file, and the shell's /workspace as its only
preopened directory (also preopened as ``.``, so relative paths resolve in the working directory).
WASI preview 1 has no sockets and no processes, and no socket is preopened.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO

import wasmtime

from ...domain.errors import InvalidRequest, ShellsError
from . import workspace_fs
from .protocol import HEADER, WorkerFrameKind, frame, json_frame

TICK_S = 0.01
STDLIB_GUEST_DIR = "/stdlib"
PR_SET_PDEATHSIG = 1
MAX_USER_MODULE_BYTES = 64 * 1024 * 1024
USER_MODULES_KEPT = 4
TABLE_ELEMENTS = 1_000_000
INSTANCES = 4
TABLES = 8
MEMORIES = 2
TIMEOUT_EXIT_CODE = 137
TRAP_EXIT_CODE = 134


def engine_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    return config


ENGINE_KEY = f"wasmtime-{metadata.version('wasmtime')}-epoch"
"""Names the engine configuration in compiled-module cache keys: a change of either recompiles."""


def cached_module(engine: wasmtime.Engine, wasm: Path, sha256: str, cache_dir: Path) -> wasmtime.Module:
    """Load ``wasm`` compiled, from ``cache_dir`` when it holds it for this module and engine."""
    key = hashlib.sha256(f"{sha256}:{ENGINE_KEY}".encode()).hexdigest()[:24]
    cwasm = cache_dir / f"{wasm.stem}-{key}.cwasm"
    if cwasm.is_file():
        return wasmtime.Module.deserialize_file(engine, str(cwasm))
    module = wasmtime.Module.from_file(engine, str(wasm))
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
        tmp.write(module.serialize())
    Path(tmp.name).replace(cwasm)
    return module


class Worker:
    def __init__(self, modules: dict[str, tuple[Path, str]], cache_dir: Path, out: BinaryIO) -> None:
        self.engine = wasmtime.Engine(engine_config())
        self.modules = {
            name: cached_module(self.engine, path, sha, cache_dir) for name, (path, sha) in modules.items()
        }
        self.user_modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.out = out
        threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while True:
            time.sleep(TICK_S)
            self.engine.increment_epoch()

    def send(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    # one run ---------------------------------------------------------------------------------------
    def run(self, request: dict[str, Any], stdin: bytes, inline: bytes | None) -> None:
        try:
            module = self._module(request, inline)
            self._run(module, request, stdin)
        except ShellsError as exc:
            self.send(json_frame(WorkerFrameKind.FAIL, {"code": exc.code, "message": exc.message}))

    def _module(self, request: dict[str, Any], inline: bytes | None) -> wasmtime.Module:
        preset = request.get("preset")
        if preset is not None:
            return self.modules[preset]
        path = str(request.get("wasm_path", "the compiled program"))
        if inline is not None:
            data = inline
        else:
            fd = workspace_fs.open_file(Path(request["workspace"]), path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_USER_MODULE_BYTES + 1)
        if len(data) > MAX_USER_MODULE_BYTES:
            raise _invalid(f"{path} is larger than {MAX_USER_MODULE_BYTES >> 20} MiB.")
        digest = hashlib.sha256(data).hexdigest()
        module = self.user_modules.get(digest)
        if module is None:
            try:
                module = wasmtime.Module(self.engine, data)
            except wasmtime.WasmtimeError as exc:
                raise _invalid(f"{path} is not a valid WebAssembly module: {_first_line(exc)}") from None
            self.user_modules[digest] = module
            while len(self.user_modules) > USER_MODULES_KEPT:
                self.user_modules.popitem(last=False)
        self.user_modules.move_to_end(digest)
        return module

    def _run(self, module: wasmtime.Module, request: dict[str, Any], stdin: bytes) -> None:
        started = time.monotonic()
        store = wasmtime.Store(self.engine)
        store.set_limits(
            memory_size=int(request["memory_bytes"]),
            table_elements=TABLE_ELEMENTS,
            instances=INSTANCES,
            tables=TABLES,
            memories=MEMORIES,
        )
        store.set_epoch_deadline(max(1, math.ceil(float(request["timeout_s"]) / TICK_S)))
        cap = int(request["output_cap_bytes"])
        sent = [0]
        truncated = [False]

        def output(kind: WorkerFrameKind) -> Any:
            def write(data: bytes) -> int:
                room = cap - sent[0]
                if len(data) > room:  # like a closed pipe: the guest sees EPIPE past the cap
                    truncated[0] = True
                    data = data[: max(room, 0)]
                    if not data:
                        return -errno.EPIPE
                sent[0] += len(data)
                self.send(frame(kind, bytes(data)))
                return len(data)

            return write

        wasi = wasmtime.WasiConfig()
        wasi.argv = list(request["argv"])
        env = dict(request["env"])
        stdlib = request.get("python_stdlib")
        if stdlib is not None and request.get("preset") == "python":
            # The standard library as plain files (read-only) instead of the zip packed inside the
            # module: CPython's start-up then skips zipimport, a third of its CPU time.
            wasi.preopen_dir(str(stdlib), STDLIB_GUEST_DIR, False)
            env = {"PYTHONHOME": STDLIB_GUEST_DIR, **env}
        wasi.env = [[k, v] for k, v in env.items()]
        wasi.preopen_dir(request["workspace"], "/workspace")
        wasi.stdout_custom = output(WorkerFrameKind.STDOUT)
        wasi.stderr_custom = output(WorkerFrameKind.STDERR)
        cwd = str(request["cwd"])
        # The working directory is opened without following symlinks and preopened through its fd,
        # so a guest racing to swap it for a link cannot point the host elsewhere.
        with (
            workspace_fs.dir_fd(Path(request["workspace"]), workspace_fs.relative(cwd), cwd) as cwd_fd,
            tempfile.TemporaryFile() as stdin_file,
        ):
            wasi.preopen_dir(f"/proc/self/fd/{cwd_fd}", ".")
            stdin_file.write(stdin)
            stdin_file.flush()
            wasi.stdin_file = f"/proc/self/fd/{stdin_file.fileno()}"
            store.set_wasi(wasi)
        code, timed_out = 0, False
        try:
            instance = self.linker.instantiate(store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise _invalid(f"The program cannot start in this shell: {_first_line(exc)}") from None
        start = instance.exports(store).get("_start")
        if not isinstance(start, wasmtime.Func):
            raise _invalid("The module is not a WASI command: it exports no _start function.")
        self.send(frame(WorkerFrameKind.STARTED, b""))
        try:
            start(store)
        except wasmtime.ExitTrap as exc:
            code = exc.code
        except wasmtime.Trap as exc:
            if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                code, timed_out = TIMEOUT_EXIT_CODE, True
            else:
                code = TRAP_EXIT_CODE
                message = f"\nwasm trap: {_first_line(exc)}\n".encode()
                self.send(frame(WorkerFrameKind.STDERR, message))
        except wasmtime.WasmtimeError as exc:
            code = TRAP_EXIT_CODE
            self.send(frame(WorkerFrameKind.STDERR, f"\nwasm error: {_first_line(exc)}\n".encode()))
        self.send(
            json_frame(
                WorkerFrameKind.EXIT,
                {
                    "exit_code": code,
                    "timed_out": timed_out,
                    "truncated": truncated[0],
                    "duration_ms": (time.monotonic() - started) * 1000,
                },
            )
        )


def _invalid(message: str) -> ShellsError:
    return InvalidRequest(message)


def _first_line(exc: BaseException) -> str:
    """wasmtime's message without its backtrace: the first line, or the cause when it names one."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if "Caused by:" in lines[:-1]:
        return lines[lines.index("Caused by:") + 1][:300]
    return (lines or [type(exc).__name__])[0][:300]


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def _read_frame(stream: BinaryIO) -> bytes | None:
    """The payload of the next frame (STDIN or MODULE follow a RUN)."""
    header = _read_exactly(stream, HEADER.size)
    return None if header is None else _read_exactly(stream, HEADER.unpack(header)[0])


def serve(worker: Worker, stream: BinaryIO) -> None:
    while (header := _read_exactly(stream, HEADER.size)) is not None:
        size, kind = HEADER.unpack(header)
        payload = _read_exactly(stream, size)
        if payload is None or kind != WorkerFrameKind.RUN:
            return
        request = json.loads(payload)
        stdin = _read_frame(stream)
        if stdin is None:
            return
        inline = _read_frame(stream) if request.get("inline_module") else None
        if request.get("inline_module") and inline is None:
            return
        worker.run(request, stdin, inline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--module", action="append", default=[], help="NAME=PATH=SHA256")
    args = parser.parse_args()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlive the server
    modules = {}
    for spec in args.module:
        name, path, sha = spec.split("=", 2)
        modules[name] = (Path(path), sha)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the pipe
    try:
        worker = Worker(modules, args.cache_dir, out)
        worker.send(json_frame(WorkerFrameKind.READY, {"pid": os.getpid(), "engine": ENGINE_KEY}))
        serve(worker, sys.stdin.buffer)
    except BaseException as exc:
        print(f"wasm worker failed: {exc!r}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
