"""Start-up reconciliation: the store is the record, the host is the reality.

Shells still running are adopted; shells whose processes are gone but whose filesystem is intact
become ``stopped`` (restartable) with the reason; shells whose filesystem is gone become ``lost``;
shells caught half-created are failed and cleaned; host objects nobody owns are removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..store.usage import UsageRepair
from .context import ControlContext

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    usage: UsageRepair | None = None


def _mark(ctx: ControlContext, shell: ShellRecord, target: ShellState, reason: str) -> None:
    """Move a shell to ``target`` with the reason, recorded as the system's doing."""
    draft = ctx.draft(
        None, shell, door="system", kind="state", action="reconcile", outcome=target.value, message=reason
    )
    ctx.store.change_state(shell.id, target, reason, draft)


async def reconcile(ctx: ControlContext) -> ReconcileReport:
    report = ReconcileReport()
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
    report.usage = ctx.store.repair_intervals()
    return report
