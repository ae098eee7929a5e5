"""The wasm isolation class: guest programs under wasmtime with WASI preview 1, no OS of their own.

A shell is a btrfs subvolume preopened as ``/workspace`` (its only filesystem) with a qgroup limit;
between execs nothing of it runs, so an idle shell costs no memory. Every exec runs in a warm worker
process (``pool``) with a fresh wasmtime Store: epoch deadline, memory and table limits, output cap,
explicit argv/env, no sockets. Files are read and written by the host without ever following a
symlink (``workspace_fs``).

Where things live (``P`` is the instance's btrfs pool, shared with the container class):
    P/wasm/shells/<id>/workspace        the shell's /workspace subvolume (qgroup-limited)
    P/wasm/shells/<id>/{stopped,paused}  state markers (a wasm shell has no process to ask)
    P/wasm/snapshots/<snap>/workspace   read-only snapshots
    D/logs/wasm-<id>.log                one line per exec (the shell's ``logs``)
    C/wasm/{artifacts,compiled}/        pinned interpreters and their compiled modules (cache dir)
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import metadata
from pathlib import Path

import anyio

from ...domain.capabilities import SUSPENDABLE
from ...domain.errors import (
    ERRORS_BY_CODE,
    ActionNotSupported,
    FeatureUnavailable,
    InvalidRequest,
    InvalidState,
    RuntimeFailure,
    ShellsError,
    TemplateNotFound,
)
from ...domain.execution import (
    ExecEvent,
    ExecExit,
    ExecSpec,
    ExecStarted,
    FileChange,
    FileEntry,
    KeptProcess,
    OutputChunk,
    WindowSize,
)
from ...domain.isolation import Language, Runtime
from ...domain.network import NetworkAccess, NetworkMode
from ...domain.paths import WORKSPACE, normalize_shell_path
from ...domain.runtimes import RuntimeOffer, absent_class
from ...domain.samples import ResourceUsage
from ...domain.shapes import DEFAULT_SHAPE, Shape, get_shape
from ...domain.templates import BuildProgress, TemplateMeta
from ...domain.terminal import TerminalIO, TerminalSpec
from ...domain.wasm_presets import (
    COMPILE_PROGRAM,
    COMPILED,
    PYTHON_VERSION,
    QUICKJS_VERSION,
    WASM_TEMPLATE,
    program_for,
    wasm_offers,
)
from ...settings import Settings
from .. import snapshot_files
from ..backend import HostInventory, ShellSpec, marked_inventory, read_tail
from ..host import btrfs_quota
from ..host.btrfs import BtrfsPool
from ..network.inside import LOOPBACK
from . import artifacts, workspace_fs
from .compiler import Compiled, ContainerCompiler
from .pool import WorkerPool, exit_message
from .protocol import WorkerFrameKind

log = logging.getLogger(__name__)

DEFAULT_ENV = {"HOME": "/workspace", "LANG": "C.UTF-8"}
HOST_GRACE_S = 10.0
"""How long past an exec's own deadline the host waits for its worker before killing it."""


def workspace_quota_bytes(shape: Shape) -> int:
    """The /workspace disk quota of a wasm shell: as many bytes as the shape has memory."""
    return shape.memory_bytes


class WasmBackend:
    runtime = Runtime.WASM
    capabilities = SUSPENDABLE
    """Pause and fork are honest here because between execs a wasm shell *is* its /workspace: no
    process or memory exists to lose. While a program runs they are refused (InvalidState)."""
    network_modes = frozenset({NetworkMode.SEALED})
    port_address = LOOPBACK
    """Never used: a sealed shell exposes no port."""

    def __init__(
        self,
        settings: Settings,
        pool: BtrfsPool,
        compiler: ContainerCompiler | None = None,
        warm_workers: int = 2,
    ) -> None:
        self.settings = settings
        self.compiler = compiler
        self.pool = pool
        self.logs_dir = settings.data_dir / "logs"
        self.cache_dir = settings.cache_dir / "wasm"
        self.warm_workers = warm_workers
        self.workers: WorkerPool | None = None
        self.python_stdlib: Path | None = None
        self.quota_mode = "unknown"
        self.unavailable: str | None = None
        """Why the runtime could not start (artifacts, workers), or None when it runs."""
        self._running: defaultdict[str, set[anyio.CancelScope]] = defaultdict(set)

    # paths ----------------------------------------------------------------------------------------
    @property
    def _root(self) -> Path:
        return self.pool.mount_dir / "wasm"

    def _shell_dir(self, host_id: str) -> Path:
        return self._root / "shells" / host_id

    def _workspace(self, host_id: str) -> Path:
        return self._shell_dir(host_id) / "workspace"

    def _snapshot_dir(self, snap_id: str) -> Path:
        return self._root / "snapshots" / snap_id

    def _log(self, host_id: str) -> Path:
        return self.logs_dir / f"wasm-{host_id}.log"

    # start-up -------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        await anyio.to_thread.run_sync(self.pool.ensure_mounted)
        for d in (self._root / "shells", self._root / "snapshots", self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.quota_mode = btrfs_quota.enable_simple_quota(self.pool.mount_dir)
        for shell_dir in (self._root / "shells").iterdir():  # limits are dropped by a mode switch
            if self.pool.is_subvolume(shell_dir / "workspace"):
                limit = workspace_quota_bytes(self._shape(shell_dir.name))
                btrfs_quota.limit_subvolume(shell_dir / "workspace", limit)
        try:
            await self._start_runtime()
        except (ShellsError, OSError, TimeoutError) as exc:
            # The other classes still serve: this one says why it cannot (matrix, create, exec).
            reason = exc.message if isinstance(exc, ShellsError) else f"{type(exc).__name__}: {exc}"
            self.unavailable = f"the wasm runtime did not start on this host: {reason}"
            log.error("%s", self.unavailable)
            await self.close()

    async def _start_runtime(self) -> None:
        paths = await anyio.to_thread.run_sync(artifacts.ensure_artifacts, self.settings.cache_dir)
        modules = {a.name: (paths[a.name], a.sha256) for a in artifacts.ARTIFACTS}
        if self.workers is None:
            self.workers = WorkerPool(
                self.cache_dir / "compiled", modules, self.logs_dir / "wasm-workers.log", self.warm_workers
            )
            await self.workers.start()
        if self.python_stdlib is None:
            self.python_stdlib = await self._python_stdlib(self.workers)
        self.unavailable = None

    def _require_runtime(self) -> WorkerPool:
        if self.workers is None:
            raise FeatureUnavailable(
                f"wasm shells cannot run here now: {self.unavailable or 'the class is not prepared'}. "
                "Use a 'container' shell, or ask the operator to check the server log.",
                {"runtime": Runtime.WASM.value},
            )
        return self.workers

    async def _python_stdlib(self, workers: WorkerPool) -> Path:
        """The pinned CPython's standard library as plain files: copied out of the module by the
        interpreter itself on first start, checked against its pin, and kept in the cache dir."""
        dest = artifacts.python_stdlib_dir(self.settings.cache_dir)
        if dest.is_dir():
            return dest
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as scratch:
            copy = f"import shutil; shutil.copyfile({artifacts.PYTHON_STDLIB_ZIP!r}, 'stdlib.zip')"
            request = {
                "preset": "python",
                "argv": ["python", "-c", copy],
                "env": {},
                "workspace": scratch,
                "cwd": WORKSPACE,
                "timeout_s": 120.0,
                "output_cap_bytes": 1 << 20,
                "memory_bytes": 256 << 20,
            }
            async with workers.worker() as worker:
                await worker.send_run(request, b"")
                while (await worker.recv())[0] not in (WorkerFrameKind.EXIT, WorkerFrameKind.FAIL):
                    pass
            await anyio.to_thread.run_sync(artifacts.unpack_python_stdlib, Path(scratch) / "stdlib.zip", dest)
        return dest

    async def close(self) -> None:
        if self.workers is not None:
            await self.workers.close()
            self.workers = None

    # templates: the class has exactly one, its pinned interpreters ----------------------------------
    def templates(self) -> dict[str, str]:
        return {WASM_TEMPLATE: f"CPython {PYTHON_VERSION} (WASI), QuickJS-NG {QUICKJS_VERSION}"}

    def template_meta(self, name: str) -> TemplateMeta | None:
        return None

    def list_templates(self) -> list[TemplateMeta]:
        return []

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        raise TemplateNotFound("wasm shells have no templates; they run the class's pinned interpreters.")

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        raise ActionNotSupported("wasm shells cannot be saved as templates; snapshot them instead.")

    async def delete_template(self, name: str) -> None:
        return None

    async def export_ext4(self, name: str, dest: Path) -> None:
        raise ActionNotSupported("The wasm class has no templates to export.")

    # lifecycle ------------------------------------------------------------------------------------
    def _new_workspace(self, host_id: str, shape: Shape, source: Path | None) -> None:
        ws = self._workspace(host_id)
        if source is None:
            self.pool.create_subvolume(ws)
        else:
            self.pool.snapshot(source, ws, readonly=False)
        btrfs_quota.limit_subvolume(ws, workspace_quota_bytes(shape))
        (self._shell_dir(host_id) / "shape").write_text(shape.name, encoding="utf-8")

    async def create(self, spec: ShellSpec) -> None:
        self._require_runtime()
        shell_dir = self._shell_dir(spec.host_id)
        shell_dir.mkdir(parents=True, exist_ok=False)
        try:
            source = None
            if spec.source_snapshot is not None:
                source = self._snapshot_dir(spec.source_snapshot) / "workspace"
            self._new_workspace(spec.host_id, spec.shape, source)
        except BaseException:
            await self.destroy(spec.host_id)
            raise

    async def start(self, spec: ShellSpec) -> None:
        for marker in ("stopped", "paused"):
            (self._shell_dir(spec.host_id) / marker).unlink(missing_ok=True)

    async def stop(self, host_id: str) -> None:
        """End the shell's running programs; /workspace stays. Idempotent."""
        self._cancel_runs(host_id)
        shell_dir = self._shell_dir(host_id)
        if shell_dir.exists():
            (shell_dir / "stopped").touch()

    def _cancel_runs(self, host_id: str) -> None:
        for scope in list(self._running.get(host_id, ())):
            scope.cancel()

    async def destroy(self, host_id: str) -> None:
        self._cancel_runs(host_id)
        ws = self._workspace(host_id)
        if self.pool.is_subvolume(ws):
            self.pool.delete_subvolume(ws)
        shutil.rmtree(self._shell_dir(host_id), ignore_errors=True)
        self._log(host_id).unlink(missing_ok=True)

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        """reinstall_os: the interpreters are immutable, so only running programs end; wipe_state also
        replaces /workspace with an empty one."""
        self._cancel_runs(spec.host_id)
        if wipe_workspace:
            ws = self._workspace(spec.host_id)
            if self.pool.is_subvolume(ws):
                self.pool.delete_subvolume(ws)
            self._new_workspace(spec.host_id, spec.shape, None)

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        dest = self._snapshot_dir(snapshot_id)
        dest.mkdir(parents=True)
        try:
            self.pool.snapshot(self._workspace(host_id), dest / "workspace", readonly=True)
        except BaseException:
            await self.delete_snapshot(snapshot_id)
            raise

    def _refuse_while_running(self, host_id: str, action: str) -> None:
        if self._running.get(host_id):
            raise InvalidState(
                f"A program is running in this wasm shell; {action} once it ends, or stop the shell. "
                "A running WebAssembly program's memory cannot be saved.",
                {"running_execs": len(self._running[host_id])},
            )

    async def pause(self, host_id: str) -> None:
        """Nothing runs between execs, so pausing only records it: /workspace is already on disk."""
        self._refuse_while_running(host_id, "pause")
        (self._shell_dir(host_id) / "paused").touch()

    async def resume(self, spec: ShellSpec) -> None:
        (self._shell_dir(spec.host_id) / "paused").unlink(missing_ok=True)

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        """Each child gets a writable snapshot of the parent's /workspace (all of its state)."""
        self._refuse_while_running(host_id, "fork")
        made: list[str] = []
        try:
            for child in children:
                self._shell_dir(child.host_id).mkdir(parents=True, exist_ok=False)
                made.append(child.host_id)
                self._new_workspace(child.host_id, child.shape, self._workspace(host_id))
        except BaseException:
            for child_id in made:
                await self.destroy(child_id)
            raise

    def details(self) -> dict[str, str]:
        return {
            "engine": f"wasmtime {metadata.version('wasmtime')}",
            "wasi": "preview1",
            "disk_quota": f"btrfs {self.quota_mode}",
            "python": f"CPython {PYTHON_VERSION}",
            "javascript": f"QuickJS-NG {QUICKJS_VERSION}",
            **({"unavailable": self.unavailable} if self.unavailable is not None else {}),
        }

    def offers(self) -> list[RuntimeOffer]:
        if self.unavailable is not None:
            return absent_class(Runtime.WASM, self.unavailable)
        build = self.compiler.build_template() if self.compiler is not None else None
        return wasm_offers(dict(build.versions) if build is not None else None)

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        return await snapshot_files.pack(self.pool, self._snapshot_dir(snapshot_id), dest)

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        await snapshot_files.unpack(self.pool, parts, self._snapshot_dir(snapshot_id))

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        raise ActionNotSupported("Templates are kept by the container class.")

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        raise ActionNotSupported("Templates are kept by the container class.")

    def workspace_dir(self, host_id: str) -> Path:
        return self._workspace(host_id)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        dest = self._snapshot_dir(snapshot_id)
        if self.pool.is_subvolume(dest / "workspace"):
            self.pool.delete_subvolume(dest / "workspace")
        shutil.rmtree(dest, ignore_errors=True)

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        return read_tail(self._log(host_id), max_bytes)

    def usage(self, host_id: str) -> ResourceUsage:
        """Its /workspace subvolume's quota (disk); between execs nothing runs, and an exec's worker
        is shared, so no CPU or memory is the shell's own."""
        workspace = self._workspace(host_id)
        disk = btrfs_quota.subvolume_usage(workspace) if workspace.exists() else None
        return ResourceUsage(None, None, disk)

    async def inventory(self) -> HostInventory:
        return marked_inventory(self._root / "shells", self._root / "snapshots")

    async def purge(self) -> None:
        """Destroy every wasm shell and snapshot of this instance (before the pool is unmounted)."""
        await self.close()
        if not self._root.exists():
            return
        inv = await self.inventory()
        for host_id in sorted(inv.stored):
            await self.destroy(host_id)
        for snap in sorted(inv.snapshots):
            await self.delete_snapshot(snap)
        shutil.rmtree(self._root, ignore_errors=True)

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        """A wasm shell has no network at all (WASI preview 1 has no sockets); only sealed is offered."""

    # inside the shell -----------------------------------------------------------------------------
    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        return self._exec(host_id, spec)

    async def _exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        argv = spec.effective_argv
        request: dict[str, object] = {
            "argv": list(argv),
            "env": {**DEFAULT_ENV, **spec.env},
            "workspace": str(self._workspace(host_id)),
            "cwd": spec.cwd or WORKSPACE,
            "timeout_s": spec.timeout_s,
            "output_cap_bytes": spec.output_cap_bytes,
            "memory_bytes": self._shape(host_id).memory_bytes,
            "python_stdlib": str(self.python_stdlib) if self.python_stdlib is not None else None,
        }
        compile_language = _compile_request(argv)
        if compile_language is None:
            program = program_for(argv[0])
            if program is None:
                request["wasm_path"] = _workspace_path(argv[0], spec.cwd or WORKSPACE)
            else:
                request["preset"] = program
        if not self._workspace(host_id).is_dir():
            raise RuntimeFailure("The shell's /workspace is not on this host.")
        workers = self._require_runtime()
        deadline = time.monotonic() + spec.timeout_s + HOST_GRACE_S
        scope = anyio.CancelScope()
        self._running[host_id].add(scope)
        exit_event: ExecExit | None = None
        stdin, module, compiler_output = spec.stdin, None, b""
        try:
            if compile_language is not None:
                with scope:
                    compiled = await self._compile(compile_language, spec)
                if scope.cancel_called:
                    raise InvalidState("The shell was stopped while its program compiled.")
                if compiled.module is None:
                    yield ExecStarted(pid=0)
                    yield OutputChunk("stderr", compiled.output)
                    exit_event = ExecExit(exit_code=compiled.exit_code, duration_ms=compiled.duration_ms)
                    yield exit_event
                    return
                stdin, module, compiler_output = b"", compiled.module, compiled.output
                request["argv"] = ["main.wasm"]
                request["timeout_s"] = max(0.001, spec.timeout_s - compiled.duration_ms / 1000)
            async with workers.worker() as worker:
                await worker.send_run(request, stdin, module)
                while True:
                    with scope, anyio.fail_after(max(0.0, deadline - time.monotonic())):
                        kind, payload = await worker.recv()
                    if scope.cancel_called:
                        worker.kill()
                        raise InvalidState("The shell was stopped while the program ran.")
                    if kind is WorkerFrameKind.STARTED:
                        yield ExecStarted(pid=worker.pid)
                        if compiler_output:  # warnings
                            yield OutputChunk("stderr", compiler_output)
                    elif kind is WorkerFrameKind.STDOUT or kind is WorkerFrameKind.STDERR:
                        yield OutputChunk("stdout" if kind is WorkerFrameKind.STDOUT else "stderr", payload)
                    elif kind is WorkerFrameKind.FAIL:
                        failure = exit_message(payload)
                        cls = ERRORS_BY_CODE.get(str(failure.get("code")), RuntimeFailure)
                        raise cls(str(failure.get("message", "The program could not start.")))
                    elif kind is WorkerFrameKind.EXIT:
                        done = exit_message(payload)
                        exit_event = ExecExit(
                            exit_code=int(done["exit_code"]),
                            timed_out=bool(done["timed_out"]),
                            truncated=bool(done["truncated"]),
                            duration_ms=float(done["duration_ms"]),
                        )
                        yield exit_event
                        return
        except TimeoutError:
            raise RuntimeFailure(
                "The wasm worker did not finish the program in time; it was stopped."
            ) from None
        finally:
            self._running[host_id].discard(scope)
            if not self._running[host_id]:
                self._running.pop(host_id, None)
            self._append_log(host_id, argv[0], exit_event)

    async def _compile(self, language: Language, spec: ExecSpec) -> Compiled:
        if self.compiler is None:
            raise FeatureUnavailable(
                f"{language.value} needs a container class to compile in, and this host has none.",
                {"language": language.value},
            )
        return await self.compiler.compile(language, spec.stdin, spec.timeout_s)

    def _shape(self, host_id: str) -> Shape:
        """The shape recorded at create (the memory limit and disk quota of its runs)."""
        try:
            return get_shape((self._shell_dir(host_id) / "shape").read_text(encoding="utf-8").strip())
        except (OSError, ShellsError):
            return get_shape(DEFAULT_SHAPE)

    def _append_log(self, host_id: str, program: str, done: ExecExit | None) -> None:
        if not self._shell_dir(host_id).exists():
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if done is None:
            line = f"{stamp} {program}: did not finish\n"
        else:
            flags = "".join((" timed_out" if done.timed_out else "", " truncated" if done.truncated else ""))
            line = f"{stamp} {program}: exit {done.exit_code} in {done.duration_ms:.1f} ms{flags}\n"
        with self._log(host_id).open("a", encoding="utf-8") as f:
            f.write(line)

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return _no_terminal()

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._read(host_id, path, max_bytes)

    async def _read(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        chunks = workspace_fs.read_chunks(self._workspace(host_id), path, max_bytes)
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        _no_users(owner)
        if xattrs:
            raise ActionNotSupported("A wasm shell's files have no extended attributes.")
        source = aiter(chunks)

        def pull() -> Iterator[bytes]:  # runs in the worker thread, pulling the upload as it arrives
            while (chunk := anyio.from_thread.run(anext, source, None)) is not None:
                yield chunk

        return await anyio.to_thread.run_sync(
            workspace_fs.write_file, self._workspace(host_id), path, pull(), mode
        )

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return await anyio.to_thread.run_sync(workspace_fs.list_dir, self._workspace(host_id), path)

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return await anyio.to_thread.run_sync(workspace_fs.stat_path, self._workspace(host_id), path)

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        await anyio.to_thread.run_sync(workspace_fs.remove, self._workspace(host_id), path, recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        _no_users(owner)
        await anyio.to_thread.run_sync(workspace_fs.mkdir, self._workspace(host_id), path)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        raise ActionNotSupported("The wasm class cannot rename files yet; copy and remove instead.")

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        raise ActionNotSupported("A wasm command has no process to signal; it ends at its timeout.")

    async def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        raise ActionNotSupported("A wasm command does not outlive its call.")
        yield  # an async generator, as the contract says

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return []

    async def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        raise ActionNotSupported("A wasm shell cannot watch directories yet.")
        yield  # an async generator, as the contract says


def _no_users(owner: str | None) -> None:
    if owner is not None:
        raise ActionNotSupported("A wasm shell has no Linux users to own files.")


def _compile_request(argv: tuple[str, ...]) -> Language | None:
    """The language of a ``[COMPILE_PROGRAM, language]`` exec (what ``run`` sends for rust and go)."""
    if argv[0] != COMPILE_PROGRAM:
        return None
    if len(argv) != 2 or argv[1] not in COMPILED:
        raise InvalidRequest(
            f"{COMPILE_PROGRAM} takes one argument, the language ({', '.join(COMPILED)}), and the "
            "source on stdin.",
            {"field": "cmd"},
        )
    return COMPILED[argv[1]]


def _workspace_path(argv0: str, cwd: str) -> str:
    """The shell path of a .wasm named by ``argv0`` (relative names are taken from the cwd)."""
    return normalize_shell_path(argv0 if argv0.startswith("/") else f"{cwd.rstrip('/')}/{argv0}")


@asynccontextmanager
async def _no_terminal() -> AsyncIterator[TerminalIO]:
    raise ActionNotSupported(
        "wasm shells have no terminal: WASI has no TTY or processes. Use exec, or a container or "
        "microvm shell for a terminal."
    )
    yield  # pragma: no cover
