"""Use cases that reach inside a running shell: exec and files."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, cast

from ..domain import access
from ..domain.audit import DEFAULT_DOOR
from ..domain.errors import AgentError, ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecSpec, FileChange, FileEntry
from ..domain.limits import MAX_FILE_READ_BYTES
from ..domain.paths import normalize_shell_path
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from .context import ControlContext
from .suspend import Suspension
from .templates import Templates


class Inside:
    def __init__(self, ctx: ControlContext, templates: Templates, suspension: Suspension) -> None:
        self.ctx = ctx
        self.templates = templates
        self.suspension = suspension

    def _record(
        self,
        principal: Principal,
        shell: ShellRecord,
        door: str,
        kind: str,
        action: str,
        details: dict[str, Any],
    ) -> None:
        """The audit event of one change inside a shell."""
        draft = self.ctx.draft(principal, shell, door=door, kind=kind, action=action, details=details)
        self.ctx.store.add_event(draft)

    async def _ready(
        self, principal: Principal, shell_id: str, permission: access.Permission, why: str
    ) -> ShellRecord:
        return await self.suspension.ready(principal, shell_id, permission, DEFAULT_DOOR, why)

    async def exec(
        self, principal: Principal, shell_id: str, spec: ExecSpec, door: str, action: str = "exec"
    ) -> AsyncIterator[ExecEvent]:
        """Check access, then return the command's event stream; the audit event is written at the end.

        Access is checked before the first ``await`` of the caller, so a door can turn errors into
        a 4xx before it starts streaming. The environment is the template's, then the shell's, then
        the request's; the working directory and the user default to the template's.
        """
        shell = await self.suspension.ready(principal, shell_id, access.EXEC, door, action)
        env, workdir = self.templates.exec_defaults(shell.template)
        cwd = normalize_shell_path(spec.cwd) if spec.cwd is not None else workdir
        # The request's user (E2B's commands, processes) wins over the image's ``User``.
        user = spec.user or self.templates.exec_user(shell.template)
        spec = replace(spec, env={**env, **shell.env, **spec.env}, cwd=cwd, user=user)
        events = self.ctx.backend(shell.runtime).exec(shell.id, spec)
        return self._audited(principal, shell, spec, events, door, action)

    async def _audited(
        self,
        principal: Principal,
        shell: ShellRecord,
        spec: ExecSpec,
        events: AsyncIterator[ExecEvent],
        door: str,
        action: str,
    ) -> AsyncIterator[ExecEvent]:
        started = time.monotonic()
        outcome = "cancelled"
        details: dict[str, Any] = {"argv": list(spec.effective_argv)[:16]}
        exit_event: ExecExit | None = None
        try:
            with self.suspension.busy(shell.id):
                async for event in events:
                    if isinstance(event, ExecExit):
                        outcome = "ok"
                        details |= {"exit_code": event.exit_code, "timed_out": event.timed_out}
                        exit_event = event
                        break
                    yield event
                # The command is over for the backend (a wasm shell's running count, the agent's
                # channel) and for the idle monitor before the caller sees its exit, so the caller's
                # next request finds it ended; only the audit row below may follow the answer.
                await events.aclose()  # type: ignore[attr-defined]
            if exit_event is not None:
                yield exit_event
        except ShellsError as exc:
            outcome, details = "error", details | {"code": exc.code}
            raise
        finally:
            details["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self.ctx.store.add_event(
                self.ctx.draft(
                    principal, shell, door=door, kind="exec", action=action, outcome=outcome, details=details
                )
            )

    async def read_file(self, principal: Principal, shell_id: str, path: str) -> AsyncIterator[bytes]:
        shell = await self._ready(principal, shell_id, access.FILES_READ, "a file read")
        return self.ctx.backend(shell.runtime).read_file(
            shell.id, normalize_shell_path(path), MAX_FILE_READ_BYTES
        )

    async def write_file(
        self,
        principal: Principal,
        shell_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        door: str,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        """Write a file (owned by the shell's user ``owner`` if given, else root; with ``xattrs``)."""
        shell = await self._ready(principal, shell_id, access.FILES_WRITE, "a file write")
        clean = normalize_shell_path(path)
        size = await self.ctx.backend(shell.runtime).write_file(shell.id, clean, chunks, mode, owner, xattrs)
        self._record(principal, shell, door, "files", "write", {"path": clean, "size": size})
        return size

    async def list_dir(
        self, principal: Principal, shell_id: str, path: str, xattr_prefix: str | None = None
    ) -> list[FileEntry]:
        shell = await self._ready(principal, shell_id, access.FILES_READ, "a file listing")
        return await self.ctx.backend(shell.runtime).list_dir(
            shell.id, normalize_shell_path(path), xattr_prefix
        )

    async def stat(
        self, principal: Principal, shell_id: str, path: str, xattr_prefix: str | None = None
    ) -> FileEntry:
        shell = await self._ready(principal, shell_id, access.FILES_READ, "a file stat")
        return await self.ctx.backend(shell.runtime).stat(shell.id, normalize_shell_path(path), xattr_prefix)

    async def mkdir(
        self, principal: Principal, shell_id: str, path: str, door: str, owner: str | None = None
    ) -> None:
        shell = await self._ready(principal, shell_id, access.FILES_WRITE, "a mkdir")
        clean = normalize_shell_path(path)
        await self.ctx.backend(shell.runtime).mkdir(shell.id, clean, owner)
        self._record(principal, shell, door, "files", "mkdir", {"path": clean})

    async def remove(
        self, principal: Principal, shell_id: str, path: str, recursive: bool, door: str
    ) -> None:
        shell = await self._ready(principal, shell_id, access.FILES_WRITE, "a file removal")
        clean = normalize_shell_path(path)
        await self.ctx.backend(shell.runtime).remove(shell.id, clean, recursive)
        self._record(principal, shell, door, "files", "remove", {"path": clean})

    async def rename(
        self, principal: Principal, shell_id: str, source: str, destination: str, door: str
    ) -> FileEntry:
        shell = await self._ready(principal, shell_id, access.FILES_WRITE, "a rename")
        src, dst = normalize_shell_path(source), normalize_shell_path(destination)
        entry = await self.ctx.backend(shell.runtime).rename(shell.id, src, dst)
        self._record(principal, shell, door, "files", "rename", {"path": src, "destination": dst})
        return entry

    async def signal(self, principal: Principal, shell_id: str, pid: int, signum: int, door: str) -> None:
        """Signal one of the shell's running commands (by the pid its start reported)."""
        shell = await self._ready(principal, shell_id, access.EXEC, "a signal")
        await self.ctx.backend(shell.runtime).signal(shell.id, pid, signum)
        self._record(principal, shell, door, "exec", "signal", {"pid": pid, "signal": signum})

    async def watch(
        self, principal: Principal, shell_id: str, path: str, recursive: bool
    ) -> AsyncIterator[FileChange]:
        """Changes in a directory of the shell until the iterator is closed. Returns once the watch
        is in place (errors such as a missing directory are raised here); the shell counts as busy
        while it runs (the idle monitor leaves it running)."""
        shell = await self._ready(principal, shell_id, access.FILES_READ, "a directory watch")
        changes = cast(
            AsyncGenerator[FileChange | None, None],
            self.ctx.backend(shell.runtime).watch(shell.id, normalize_shell_path(path), recursive),
        )
        try:
            if await anext(changes) is not None:
                raise AgentError("The shell agent reported a change before its watch started.")
        except BaseException:
            await changes.aclose()
            raise
        return self._busy_while(shell.id, changes)

    async def _busy_while(
        self, shell_id: str, changes: AsyncGenerator[FileChange | None, None]
    ) -> AsyncIterator[FileChange]:
        with self.suspension.busy(shell_id):
            async with contextlib.aclosing(changes):
                async for change in changes:
                    if change is not None:
                        yield change
