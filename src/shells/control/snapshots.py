"""Deleting a snapshot: the record first (with its audit event, in one transaction), then the host's
copy. A crash between the two leaves a copy no record names, which start-up reconciliation removes
(``reconcile``); shells already created from the snapshot keep running (a container's disks are its
own copies, a microvm's backing image is retired rather than removed while read)."""

from __future__ import annotations

import logging

from ..domain import access
from ..domain.errors import PermissionDenied, ShellsError
from ..domain.principal import Principal
from ..domain.shell import SnapshotRecord
from ..domain.states import ShellState
from .auth import find_snapshot, require, role_on
from .context import ControlContext

log = logging.getLogger(__name__)


def shells_from(ctx: ControlContext, snap: SnapshotRecord) -> list[str]:
    """The ids of the tenant's shells that still exist and were created from ``snap``."""
    gone = (ShellState.DELETED, ShellState.LOST)
    shells = ctx.store.list_shells(snap.tenant)
    return [s.id for s in shells if s.source_snapshot == snap.id and s.state not in gone]


async def delete_snapshot(
    ctx: ControlContext, principal: Principal, snapshot_id: str, door: str
) -> SnapshotRecord:
    """Delete one of the caller's snapshots: 404 for an unknown one or one of a shell the caller has
    no role on, 403 below the owner role on that shell."""
    require(principal, access.DESTROY.scope)
    snap = find_snapshot(ctx.store, principal, snapshot_id)
    source = ctx.store.get_shell(snap.shell_id)
    role = None if source is None else role_on(ctx.store, principal, source)
    if source is None or role is None or role < access.DESTROY.role:
        raise PermissionDenied(
            f"Deleting snapshot '{snap.id}' needs the owner role on shell {snap.shell_id}.",
            {"needs": access.DESTROY.role.label},
        )
    draft = ctx.draft(
        principal, source, door=door, kind="action", action="delete_snapshot", details={"snapshot": snap.id}
    )
    ctx.store.mark_snapshot_deleted(snap.id, draft)
    try:
        await ctx.backend(snap.runtime).delete_snapshot(snap.id)
    except ShellsError as exc:  # the record is gone: reconciliation removes the host's copy at start-up
        log.warning("removing snapshot %s from the host failed: %s", snap.id, exc.message)
    return snap
