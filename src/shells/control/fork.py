"""Fork: N new shells carrying a running (or paused) shell's memory and files, independent from then on."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from ..domain.errors import ShellsError
from ..domain.ids import new_id
from ..domain.principal import Principal
from ..domain.shapes import get_shape
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..store.secrets import SecretsStore
from .context import ControlContext
from .requests import MAX_NAME
from .suspend import Suspension

log = logging.getLogger(__name__)
FORK_SUFFIX = "-fork-{}"


def child_record(parent: ShellRecord, owner: str, index: int, now: datetime) -> ShellRecord:
    """The record of fork ``index`` of ``parent``: the parent's settings, a new id and name."""
    suffix = FORK_SUFFIX.format(index)
    return replace(
        parent,
        id=new_id("sh"),
        owner=owner,
        name=parent.name[: MAX_NAME - len(suffix)] + suffix,
        state=ShellState.CREATING,
        state_reason="",
        env=dict(parent.env),
        labels=dict(parent.labels),
        source_snapshot=None,
        pooled=False,
        created_at=now,
        updated_at=now,
    )


async def fork_shell(
    ctx: ControlContext,
    suspension: Suspension,
    principal: Principal,
    parent: ShellRecord,
    door: str,
    count: int,
) -> list[ShellRecord]:
    """Record ``count`` children in ``creating``, let the backend start them all from the parent's
    state, then mark them running. All or nothing: if the backend fails, however, it has removed
    what it started, and every child is recorded ``deleted`` with why (so none holds quota)."""
    ctx.quotas.check_shell(parent.tenant, get_shape(parent.shape), count)
    now = datetime.now(UTC)
    children = [child_record(parent, principal.id, i, now) for i in range(1, count + 1)]
    for child in children:
        details = {"parent": parent.id}
        ctx.store.add_shell(
            child, ctx.draft(principal, child, door=door, kind="create", action="fork", details=details)
        )
    SecretsStore(ctx.store).copy_to(parent.id, [c.id for c in children])  # same secrets, same placeholders
    try:
        await ctx.backend(parent.runtime).fork(parent.id, [ctx.spec(c) for c in children])
    except BaseException as exc:
        if not isinstance(exc, ShellsError):
            log.error("forking %s failed on the host", parent.id, exc_info=exc)
        why = exc.message if isinstance(exc, ShellsError) else "an unexpected host error (see the server log)"
        for child in children:
            _settle(ctx, principal, child, door, ShellState.DELETED, f"the fork failed: {why}")
        raise
    started = [_settle(ctx, principal, c, door, ShellState.RUNNING, "") for c in children]
    for child in started:
        suspension.touch(child.id)
    return started


def _settle(
    ctx: ControlContext, principal: Principal, child: ShellRecord, door: str, target: ShellState, reason: str
) -> ShellRecord:
    draft = ctx.draft(
        principal, child, door=door, kind="state", action="fork", outcome=target.value, message=reason
    )
    return ctx.store.change_state(child.id, target, reason, draft)
