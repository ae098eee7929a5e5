"""Start-up reconciliation: the store is the record, the host is the reality.

Shells still running are adopted; shells whose processes are gone but whose filesystem is intact
become ``stopped`` (restartable) with the reason; shells whose filesystem is gone become ``lost``;
shells caught half-created are failed and cleaned; host objects nobody owns are removed.

A crash can also cut a transition short. Each backend's ``prepare`` first brings its half-done host
transitions to a consistent host state; then here the record follows: an action written down as in
flight (``inflight``) is finished, and a paused-or-running shell whose pause or resume completed on
the host but not in the record takes the host's state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..domain.capabilities import Capability
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..runtime.backend import Backend, HostInventory
from ..store.usage import UsageRepair
from .context import ControlContext
from .inflight import Inflight, Intent

log = logging.getLogger(__name__)
_FINISHABLE = frozenset({ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED, ShellState.FAILED})
"""The states an in-flight action can leave in the record (whatever it started from)."""


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    """Shells whose in-flight action (or pause, or resume) was finished."""
    orphans_removed: list[str] = field(default_factory=list)
    usage: UsageRepair | None = None


def _mark(
    ctx: ControlContext, shell: ShellRecord, target: ShellState, reason: str, message: str = ""
) -> None:
    """Move a shell to ``target`` with the reason, recorded as the system's doing."""
    draft = ctx.draft(
        None,
        shell,
        door="system",
        kind="state",
        action="reconcile",
        outcome=target.value,
        message=message or reason,
    )
    ctx.store.change_state(shell.id, target, reason, draft)


async def reconcile(ctx: ControlContext) -> ReconcileReport:
    report = ReconcileReport()
    inflight = Inflight(ctx.settings.data_dir)
    intents = inflight.pending()
    for runtime, backend in ctx.backends.items():
        inv = await backend.inventory()
        live = inv.running | inv.paused
        known: set[str] = set()
        for shell in ctx.store.list_shells(None, pooled=False) + ctx.store.list_shells(None, pooled=True):
            if shell.runtime is not runtime:
                continue
            known.add(shell.id)

            if shell.pooled and (shell.state is not ShellState.RUNNING or shell.id not in live):
                await backend.destroy(shell.id)
                ctx.store.purge_shell(shell.id)
                continue
            intent = intents.get(shell.id)
            if intent is not None and _recorded(intent, shell, inv):
                intent = None  # the crash came after the record changed: nothing is left to do
            if intent is not None and shell.id in inv.stored and shell.state in _FINISHABLE:
                await _finish(ctx, backend, shell, intent)
                report.finished.append(shell.id)
                continue
            if Capability.PAUSE in backend.capabilities and _settle_suspension(ctx, shell, inv):
                report.finished.append(shell.id)
                continue
            match shell.state:
                case ShellState.CREATING:
                    await backend.destroy(shell.id)
                    _mark(
                        ctx, shell, ShellState.FAILED, "the server stopped while this shell was being created"
                    )
                    report.failed.append(shell.id)
                case ShellState.RUNNING | ShellState.PAUSED if shell.id in live:
                    report.adopted.append(shell.id)
                case ShellState.RUNNING | ShellState.PAUSED if shell.id in inv.stored:
                    await backend.stop(shell.id)
                    _mark(
                        ctx,
                        shell,
                        ShellState.STOPPED,
                        "its processes were gone when the server started (host restart?)",
                    )
                    report.stopped.append(shell.id)
                case ShellState.RUNNING | ShellState.PAUSED | ShellState.STOPPED if (
                    shell.id not in inv.stored
                ):
                    _mark(ctx, shell, ShellState.LOST, "its filesystem is no longer on this host")
                    report.lost.append(shell.id)
                case ShellState.STOPPED | ShellState.FAILED if shell.id in live:
                    await backend.stop(shell.id)
        for orphan in sorted((inv.stored | live) - known):
            log.warning("removing orphan shell %s found on the host", orphan)
            await backend.destroy(orphan)
            report.orphans_removed.append(orphan)
        kept = ctx.store.all_snapshot_ids()
        for snap in sorted(inv.snapshots - kept):
            await backend.delete_snapshot(snap)
            report.orphans_removed.append(snap)
    for shell_id in intents:
        inflight.done(shell_id)
    report.usage = ctx.store.usage.repair_intervals()
    return report


def _recorded(intent: Intent, shell: ShellRecord, inv: HostInventory) -> bool:
    """Whether the record and the host already show the action's outcome (a restart, reinstall or
    wipe shows none, so those are always done again)."""
    if intent.action is Capability.STOP:
        return shell.state is ShellState.STOPPED and shell.id not in inv.running | inv.paused
    if intent.action is Capability.START:
        return shell.state is ShellState.RUNNING and shell.id in inv.running
    return False


async def _finish(ctx: ControlContext, backend: Backend, shell: ShellRecord, intent: Intent) -> None:
    """Do the whole of an action a crash cut short again (each is idempotent from any point it can
    have reached), then record its outcome; if it fails now, the shell is ``failed`` with why."""
    action = intent.action
    spec = ctx.spec(shell)
    target, reason = shell.state, shell.state_reason
    try:
        match action:
            case Capability.STOP:
                await backend.stop(shell.id)
                target, reason = ShellState.STOPPED, f"stopped by {intent.by}"
            case Capability.START | Capability.RESTART:
                await backend.stop(shell.id)
                await backend.start(spec)
                target, reason = ShellState.RUNNING, ""
            case Capability.REINSTALL_OS | Capability.WIPE_STATE:
                await backend.stop(shell.id)
                await backend.reset(spec, wipe_workspace=action is Capability.WIPE_STATE)
                if shell.state is ShellState.RUNNING:
                    await backend.start(spec)
    except Exception as exc:  # whatever it was, the shell must not be left half-done and unexplained
        log.exception("finishing %s of shell %s after a crash failed", action, shell.id)
        why = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        target = ShellState.FAILED
        reason = f"'{action}' was cut short by a server crash and finishing it at start-up failed: {why}"
    message = f"'{action}' asked by {intent.by} was cut short by a server crash; finished at start-up"
    if target is shell.state:
        ctx.store.add_event(
            ctx.draft(None, shell, door="system", kind="state", action="reconcile", message=message)
        )
    else:
        _mark(ctx, shell, target, reason, message if target is not ShellState.FAILED else reason)


def _settle_suspension(ctx: ControlContext, shell: ShellRecord, inv: HostInventory) -> bool:
    """For a class that pauses: a pause or resume that completed on the host but not in the record
    (the server died in between) is recorded now. Whether the host got that far is the backend's
    to settle at start-up (``prepare``); the record then follows the host."""
    if shell.state is ShellState.RUNNING and shell.id in inv.paused:
        _mark(ctx, shell, ShellState.PAUSED, "paused while the server stopped (a pause it had begun)")
        return True
    if shell.state is ShellState.PAUSED and shell.id in inv.running:
        message = "resumed: a resume begun before the server stopped had finished"
        _mark(ctx, shell, ShellState.RUNNING, "", message)
        return True
    return False
