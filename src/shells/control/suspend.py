"""Pause to zero, resume in place, and the idle monitor that pauses shells nobody is using.

One place decides when a paused shell comes back: an explicit ``resume``, any request that needs
the shell's processes (exec, run, files, terminal), which waits for the resume and then runs, or a
request to one of its exposed ports when the shell has ``auto_resume`` (``wake``). The
idle monitor pauses a running shell of a class that can pause once no exec, terminal, file or port
traffic has touched it for its ``idle_timeout_s``. Activity is kept in memory: after a server
restart every shell starts a fresh idle period, which errs on the side of not pausing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

from ..domain import access
from ..domain.capabilities import Capability
from ..domain.errors import InvalidState, ShellsError
from ..domain.isolation import Runtime
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .auth import authorize
from .context import ControlContext

log = logging.getLogger(__name__)
IDLE_SWEEP_S = 1.0


def idle_due(last_active: float, now: float, timeout_s: int | None) -> bool:
    """Whether a shell last active at ``last_active`` (monotonic seconds) should pause at ``now``."""
    return bool(timeout_s) and now - last_active >= float(timeout_s or 0)


@asynccontextmanager
async def _nothing_around(shell: ShellRecord) -> AsyncIterator[None]:
    yield


class Suspension:
    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        self.around_save: Callable[[ShellRecord], AbstractAsyncContextManager[None]] = _nothing_around
        """Wrapped around every pause and system stop: workspace sync's last pass of a shell it
        reads through its agent (``WorkspaceSync.around_save``)."""
        self._last_active: dict[str, float] = {}
        self._busy: Counter[str] = Counter()

    # activity -------------------------------------------------------------------------------------
    def touch(self, shell_id: str) -> None:
        """Note use of the shell now: its idle period starts again."""
        self._last_active[shell_id] = time.monotonic()

    def begin_use(self, shell_id: str) -> None:
        """While an exec streams or a terminal is attached the shell is in use, however quiet."""
        self._busy[shell_id] += 1

    def end_use(self, shell_id: str) -> None:
        self._busy[shell_id] -= 1
        if self._busy[shell_id] <= 0:
            del self._busy[shell_id]
        self.touch(shell_id)

    @contextmanager
    def busy(self, shell_id: str) -> Iterator[None]:
        self.begin_use(shell_id)
        try:
            yield
        finally:
            self.end_use(shell_id)

    def can(self, shell: ShellRecord, capability: Capability) -> bool:
        return self._class_can(shell.runtime, capability)

    def _class_can(self, runtime: Runtime, capability: Capability) -> bool:
        backend = self.ctx.backends.get(runtime)
        return backend is not None and capability in backend.capabilities

    # who may use a shell now ----------------------------------------------------------------------
    def usable(self, principal: Principal, shell_id: str, permission: access.Permission) -> ShellRecord:
        """The shell if the caller may do ``permission`` on it and it is running, or paused in a
        class that resumes on demand (else 403/404/409)."""
        shell = authorize(self.ctx.store, principal, shell_id, permission)
        if shell.state is ShellState.RUNNING:
            return shell
        if shell.state is ShellState.PAUSED and self.can(shell, Capability.RESUME):
            return shell
        raise InvalidState(
            f"The shell is {shell.state}; start it first (POST /v1/shells/{shell.id}/actions "
            '{"capability": "start"}).',
            {"state": shell.state.value},
        )

    async def ready(
        self, principal: Principal, shell_id: str, permission: access.Permission, door: str, why: str
    ) -> ShellRecord:
        """``usable``, then a paused shell is resumed (the caller waits) so the request can run; a
        restart under way is waited for too."""
        shell = self.usable(principal, shell_id, permission)
        if await self.ctx.restarts.wait(shell.id):
            shell = self.usable(principal, shell_id, permission)
        if shell.state is ShellState.PAUSED:
            async with self.ctx.locks[shell.id]:
                shell = self.usable(principal, shell_id, permission)
                if shell.state is ShellState.PAUSED:
                    shell = await self.resume(principal, shell, door, f"resumed for {why}")
        self.touch(shell.id)
        return shell

    async def wake(self, shell_id: str, why: str) -> ShellRecord | None:
        """Resume a paused shell with ``auto_resume`` for a request that reached its port; the shell
        as it is now, or None when it is gone. Concurrent callers queue on the shell's lock, so one
        resume serves them all; a shell that cannot or may not wake is returned unchanged."""
        shell = self.ctx.store.get_shell(shell_id)
        if shell is not None and await self.ctx.restarts.wait(shell.id):
            shell = self.ctx.store.get_shell(shell_id)
        if shell is None or shell.state is not ShellState.PAUSED or not shell.auto_resume:
            return shell
        async with self.ctx.locks[shell.id]:
            shell = self.ctx.store.get_shell(shell_id)
            if (
                shell is not None
                and shell.state is ShellState.PAUSED
                and shell.auto_resume
                and self.can(shell, Capability.RESUME)
            ):
                shell = await self.resume(None, shell, "system", f"woken by {why}")
        return shell

    # the two transitions (the caller holds the shell's lock) -------------------------------------
    async def pause(
        self, principal: Principal | None, shell: ShellRecord, door: str, reason: str, cause: str = ""
    ) -> ShellRecord:
        """``cause`` names a system reason in the event's details (the budget cap's pause)."""
        async with self.around_save(shell):
            await self.ctx.backend(shell.runtime).pause(shell.id)
        self._last_active.pop(shell.id, None)
        paused = self._moved(principal, shell, door, Capability.PAUSE, ShellState.PAUSED, reason, cause)
        return self.ctx.rested(paused)

    async def resume(
        self, principal: Principal | None, shell: ShellRecord, door: str, reason: str
    ) -> ShellRecord:
        self.ctx.quotas.check_budget(shell.tenant)
        await self.ctx.backend(shell.runtime).resume(self.ctx.spec(shell))
        self.touch(shell.id)
        return self.ctx.changed(
            self._moved(principal, shell, door, Capability.RESUME, ShellState.RUNNING, reason)
        )

    def _moved(
        self,
        principal: Principal | None,
        shell: ShellRecord,
        door: str,
        cap: Capability,
        target: ShellState,
        reason: str,
        cause: str = "",
    ) -> ShellRecord:
        draft = self.ctx.draft(
            principal,
            shell,
            door=door,
            kind="action",
            action=cap.value,
            outcome=target.value,
            message=reason,
            details={"destructive": False, **({"cause": cause} if cause else {})},
        )
        state_reason = reason if target is ShellState.PAUSED else ""
        return self.ctx.store.change_state(shell.id, target, state_reason, draft)

    async def halt(self, shell_id: str, reason: str, action: str) -> ShellRecord | None:
        """The system ends a running shell's compute (a budget cap, a time-to-live): pause it where
        its class can, else stop it keeping its files; recorded as ``action`` (a pause names it as
        its ``cause``, so webhooks tell a budget's pause from a person's). None if it was not running."""
        async with self.ctx.locks[shell_id]:
            shell = self.ctx.store.get_shell(shell_id)
            if shell is None or shell.state is not ShellState.RUNNING:
                return None
            if self.can(shell, Capability.PAUSE):
                return await self.pause(None, shell, "system", reason, cause=action)
            async with self.around_save(shell):
                await self.ctx.backend(shell.runtime).stop(shell.id)
            draft = self.ctx.draft(
                None, shell, door="system", kind="state", action=action, outcome="stopped", message=reason
            )
            return self.ctx.rested(self.ctx.store.change_state(shell.id, ShellState.STOPPED, reason, draft))

    # the idle monitor -----------------------------------------------------------------------------
    def start(self) -> None:
        if any(Capability.PAUSE in b.capabilities for b in self.ctx.backends.values()):
            self.ctx.background.every("the idle sweep", IDLE_SWEEP_S, self.sweep, singleton=True)

    async def sweep(self) -> list[str]:
        """Pause every running shell that has been idle for its timeout; returns their ids."""
        paused: list[str] = []
        now = time.monotonic()
        for shell_id, runtime, timeout_s in self.ctx.store.idle_candidates():
            if shell_id in self._busy or not self._class_can(runtime, Capability.PAUSE):
                continue
            last = self._last_active.setdefault(shell_id, now)
            lock = self.ctx.locks[shell_id]
            if not idle_due(last, now, timeout_s) or lock.locked():
                continue
            async with lock:
                fresh = self.ctx.store.get_shell(shell_id)
                if (
                    fresh is None
                    or fresh.state is not ShellState.RUNNING
                    or shell_id in self._busy
                    or not idle_due(
                        self._last_active.get(shell_id, now), time.monotonic(), fresh.idle_timeout_s
                    )
                ):
                    continue
                try:
                    await self.pause(None, fresh, "system", f"idle for {fresh.idle_timeout_s} s")
                except ShellsError as exc:
                    log.warning("pausing idle shell %s failed: %s", shell_id, exc.message)
                    self.touch(shell_id)  # try again after another idle period, not every second
                    continue
            paused.append(shell_id)
        return paused
