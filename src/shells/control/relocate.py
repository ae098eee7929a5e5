"""Moving a paused or stopped shell to another node through the object store, draining a node, and
starting a lost shell again elsewhere (docs/cluster.md, "Moving shells between nodes").

A move of a shell from node A to node B (the shell's lock held, so nothing on this replica touches
it meanwhile):

1. **save**: A takes a read-only copy of the shell's disk (a microvm's disks and saved memory) and
   stores it in the object store itself
   (``node.carrier``); the record gets its blobs (``shell_saves``). The copy on A's disk is dropped.
2. **mark**: the save row names B in ``moving_to``: B may soon hold a copy the record does not own.
3. **restore**: B fetches the blobs, makes the shell from them and leaves it as it was (stopped,
   or paused for a class that pauses), then drops the fetched copy.
4. **switch**, one transaction: the record's ``node`` becomes B (only if it still says A and the
   shell is still paused or stopped: whatever happened meanwhile wins and the move is undone), the
   mark moves to ``left_on`` = A, and the audit event is written.
5. **clean**: A removes its copy; the mark is cleared.

The record alone says which node owns the shell. A failure before the switch leaves it on A, as it
was, with B's copy removed; a crash before the switch or the clean-up leaves a copy that
``settle`` removes at the next start (or the next drain). So at every moment the shell is usable on
exactly the node the record names.

A ``lost`` shell (its node is gone) whose saved state or a durable snapshot is in the object store
is started again with ``recover``: steps 3 and 4 onto another node, from the newer of the two, and
the shell comes back ``paused`` (its saved state of a paused shell, in a class that pauses) or
``stopped``, its reason naming what it was restored from. A paused microvm keeps its memory across
a move: the copy holds its saved RAM and device state, the target restores the VM from it and
pauses it again (``runtime.microvm.portable``: its disks go with their flattened bases)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..domain import access, limits
from ..domain.capabilities import Capability
from ..domain.durable import StoredPart
from ..domain.errors import (
    ActionNotSupported,
    InvalidRequest,
    InvalidState,
    NoCapacity,
    ShellsError,
)
from ..domain.isolation import Runtime
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from ..node.routed import Fleet
from ..store.moves import MoveStore
from .auth import authorize, require
from .context import ControlContext
from .durable import Durable

log = logging.getLogger(__name__)

AT_REST = (ShellState.PAUSED, ShellState.STOPPED)


@dataclass
class DrainReport:
    """What a drain did: the shells it moved (id → node), those it left (id → why)."""

    node: str
    moved: dict[str, str] = field(default_factory=dict)
    left: dict[str, str] = field(default_factory=dict)

    def to_public(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "cordoned": True,
            "moved": [{"shell": s, "to": n} for s, n in sorted(self.moved.items())],
            "left": [{"shell": s, "reason": r} for s, r in sorted(self.left.items())],
        }


class Relocation:
    def __init__(self, ctx: ControlContext, durable: Durable) -> None:
        self.ctx = ctx
        self.durable = durable
        self.moves = MoveStore(ctx.store)
        self._wanted: set[str] = set()
        """Shells whose state is to be saved (``save_later``)."""
        self._slots = asyncio.Semaphore(limits.DURABLE_UPLOADS)
        """Background saves packed and sent at once (a move's own save does not wait for them)."""

    def start(self) -> None:
        """On a cluster with a shared object store, save every shell that pauses or stops
        (``ControlContext.at_rest``). Without one (each machine's own directory) no other node
        could fetch a save, so none is made."""
        if self.ctx.fleet is not None and self.ctx.settings.object_store is not None:
            self.ctx.at_rest = self.save_later

    def save_later(self, shell: ShellRecord) -> None:
        """Save the state of ``shell`` (just paused or stopped) to the object store in the
        background, unless it runs again, moves or goes first. One task per shell: a pause that
        comes while a save runs is saved once that one ends."""
        self._wanted.add(shell.id)

        async def save() -> None:
            fleet = self._fleet()
            while shell.id in self._wanted:
                self._wanted.discard(shell.id)
                try:
                    async with self.ctx.locks[shell.id]:  # the copy only: a resume waits no upload
                        now = self.ctx.store.get_shell(shell.id)
                        if now is None or now.state not in AT_REST:
                            continue
                        key, taken_at = await self._take(fleet, now)
                    async with self._slots:
                        await self._keep(fleet, now, key, taken_at)
                except ShellsError as exc:
                    log.warning("the state of %s stays on its node only: %s", shell.id, exc.message)

        self.ctx.background.run(f"save-{shell.id}", save)

    def _fleet(self) -> Fleet:
        if self.ctx.fleet is None:
            raise ActionNotSupported(
                "This server runs its shells on one machine: there is no other node to move them to."
            )
        return self.ctx.fleet

    # cordons ----------------------------------------------------------------------------------------
    def _known_node(self, name: str) -> None:
        fleet = self.ctx.fleet
        names = set(fleet.members) if fleet is not None else {self.ctx.settings.node_name}
        if name not in names:
            raise InvalidRequest(
                f"No node is named {name!r} here (nodes: {', '.join(sorted(names))}).", {"field": "node"}
            )

    def uncordon(self, principal: Principal, name: str) -> dict[str, Any]:
        require(principal, access.PLATFORM_ADMIN)
        self._known_node(name)
        was = self.moves.uncordon(name)
        return {"node": name, "cordoned": False, "was_cordoned": was}

    # drain ------------------------------------------------------------------------------------------
    async def drain(self, principal: Principal, name: str, door: str) -> DrainReport:
        """Cordon ``name`` (no new shells go there) and move every paused and stopped shell off it.
        Running shells are not touched: they are reported as left, with the reason (pause or stop
        them and drain again to move them)."""
        require(principal, access.PLATFORM_ADMIN)
        self._known_node(name)
        self.moves.cordon(name, f"drained by {principal.id}")
        report = DrainReport(name)
        await self.settle()
        for shell in self.ctx.store.list_shells(None):
            if shell.node != name or shell.state in (ShellState.DELETED, ShellState.LOST):
                continue
            if shell.state not in AT_REST:
                report.left[shell.id] = (
                    f"{shell.state}: only paused and stopped shells move; pause or stop it and drain again"
                )
                continue
            try:
                moved = await self.move(principal, shell.id, door)
                report.moved[shell.id] = moved.node
            except ShellsError as exc:
                report.left[shell.id] = exc.message
        return report

    # one move ---------------------------------------------------------------------------------------
    async def move(self, principal: Principal | None, shell_id: str, door: str) -> ShellRecord:
        """Move one paused or stopped shell to the node with the fewest shells that runs its class
        and is not cordoned."""
        fleet = self._fleet()
        async with self.ctx.locks[shell_id]:
            shell = self.ctx.store.get_shell(shell_id)
            if shell is None or shell.state not in AT_REST:
                state = "gone" if shell is None else str(shell.state)
                raise InvalidState(
                    f"Shell {shell_id} is {state}; only paused and stopped shells move between nodes.",
                    {"state": state},
                )
            source = shell.node
            target = self._choose(fleet, shell.runtime, {source})
            parts = await self._save(fleet, shell)
            await self._restore(fleet, shell, target, parts, shell.state)
            draft = self.ctx.draft(
                principal,
                shell,
                door=door,
                kind="action",
                action="move",
                outcome=shell.state.value,
                message=f"moved from node {source} to {target}",
                details={"from": source, "to": target},
            )
            moved = self.moves.switch(
                shell.id, source, target, AT_REST, shell.state, shell.state_reason, draft
            )
            if moved is None:  # resumed, deleted or moved meanwhile (another replica): undo B's copy
                await self._discard(fleet, shell, target)
                raise InvalidState(
                    f"Shell {shell.id} changed while it was being moved; it stays where it is."
                )
            fleet.routes.forget(shell.id)
            await self._discard(fleet, shell, source, left=True)
            return moved

    def _choose(self, fleet: Fleet, runtime: Runtime, avoid: set[str]) -> str:
        cordoned = self.moves.cordoned()
        open_nodes = [n for n in fleet.names(runtime) if n not in avoid and n not in cordoned]
        if not open_nodes:
            raise NoCapacity(
                f"No other node that runs {runtime} shells is open (not cordoned) to take it.",
                {"runtime": runtime.value},
            )
        held = Counter(s.node for s in self.ctx.store.list_shells(None) if s.state is not ShellState.DELETED)
        return min(open_nodes, key=lambda n: (held[n], n))

    async def _save(self, fleet: Fleet, shell: ShellRecord) -> tuple[StoredPart, ...]:
        """Step 1: the shell's disk into the object store, from its node; the record names it."""
        return await self._keep(fleet, shell, *await self._take(fleet, shell))

    async def _take(self, fleet: Fleet, shell: ShellRecord) -> tuple[str, datetime]:
        """A read-only copy of the shell's disk on its node (instant: a btrfs snapshot); its name and
        when it was taken. The caller holds the shell's lock."""
        key = f"mv-{secrets.token_hex(8)}"
        await fleet.backend(shell.node, shell.runtime).snapshot(shell.id, key)
        return key, datetime.now(UTC)

    async def _keep(
        self, fleet: Fleet, shell: ShellRecord, key: str, taken_at: datetime
    ) -> tuple[StoredPart, ...]:
        """The copy ``key`` stored by its node and recorded as the shell's saved state (unless a
        newer save is recorded already, or the shell moved meanwhile); the copy is dropped."""
        backend = fleet.backend(shell.node, shell.runtime)
        try:
            parts = await fleet.carrier(shell.node).put_snapshot(shell.runtime, key)
        finally:
            await _quietly(backend.delete_snapshot(key), f"dropping the saved copy {key} on {shell.node}")
        unnamed = self.moves.saved(shell, shell.node, parts, shell.state, taken_at)
        await self.durable.collect(unnamed)
        return tuple(parts)

    async def _restore(
        self, fleet: Fleet, shell: ShellRecord, target: str, parts: tuple[StoredPart, ...], state: ShellState
    ) -> None:
        """Steps 2 and 3: the shell made on ``target`` from ``parts`` and left in ``state``; on any
        failure ``target`` keeps nothing of it."""
        self.moves.mark(shell.id, moving_to=target)
        backend = fleet.backend(target, shell.runtime)
        key = f"mv-{secrets.token_hex(8)}"
        try:
            await backend.destroy(shell.id)  # what an earlier move cut short left there
            await fleet.carrier(target).get_snapshot(shell.runtime, key, parts)
            if self.ctx.follow_mounts is not None:  # its volumes, as the target must bind them
                await self.ctx.follow_mounts(shell, target)
            there = replace(shell, node=target)  # its mounts are the target's
            try:
                await backend.create(replace(self.ctx.spec(there), source_snapshot=key))
            finally:
                await _quietly(backend.delete_snapshot(key), f"dropping the fetched copy {key} on {target}")
            if state is ShellState.PAUSED and Capability.PAUSE in backend.capabilities:
                await backend.pause(shell.id)
            else:
                await backend.stop(shell.id)
        except BaseException:
            await self._discard(fleet, shell, target)
            raise

    async def _discard(self, fleet: Fleet, shell: ShellRecord, node: str, *, left: bool = False) -> None:
        """Remove ``node``'s copy of a shell it does not own; the mark stays if that fails (``settle``
        tries again)."""
        try:
            await fleet.backend(node, shell.runtime).destroy(shell.id)
        except ShellsError as exc:
            log.warning("the copy of %s on node %s stays for now: %s", shell.id, node, exc.message)
            return
        self.moves.mark(shell.id)

    async def settle(self) -> None:
        """Remove the copies moves cut short left behind (at start-up and before each drain): a copy
        is removed only from a node the record does not name for its shell."""
        fleet = self.ctx.fleet
        if fleet is None:
            return
        for save in self.moves.unsettled():
            shell = self.ctx.store.get_shell(save.shell_id)
            if shell is None:
                continue
            for node in {save.moving_to, save.left_on} - {None, shell.node}:
                assert node is not None
                await self._discard(fleet, shell, node)
            if shell.node in (save.moving_to, save.left_on):
                self.moves.mark(shell.id)

    # a lost shell -----------------------------------------------------------------------------------
    async def recover(self, principal: Principal, shell_id: str, door: str) -> ShellRecord:
        """Start a lost shell again on another node from the newer of its saved state and its newest
        durable snapshot; it comes back paused or stopped (resume or start it next)."""
        shell = authorize(self.ctx.store, principal, shell_id, access.ACT)
        fleet = self._fleet()
        async with self.ctx.locks[shell.id]:
            shell = authorize(self.ctx.store, principal, shell_id, access.ACT)
            if shell.state is not ShellState.LOST:
                raise InvalidState(
                    f"Shell {shell.id} is {shell.state}, not lost; only a lost shell is recovered.",
                    {"state": shell.state.value},
                )
            parts, state, what, at, saved = self._newest_state(shell)
            lost_on = shell.node
            if not saved:  # from now on the shell's saved state is that snapshot's
                unnamed = self.moves.saved(shell, lost_on, list(parts), state, datetime.now(UTC))
                await self.durable.collect(unnamed)
            target = self._choose(fleet, shell.runtime, {lost_on})
            await self._restore(fleet, shell, target, parts, state)
            reason = f"recovered on node {target} from {what} of {at.isoformat(timespec='seconds')}"
            draft = self.ctx.draft(
                principal,
                shell,
                door=door,
                kind="action",
                action="recover",
                outcome=state.value,
                message=reason,
                details={"from": lost_on, "to": target, "source": what},
            )
            recovered = self.moves.switch(shell.id, lost_on, target, (ShellState.LOST,), state, reason, draft)
            if recovered is None:
                await self._discard(fleet, shell, target)
                raise InvalidState(f"Shell {shell.id} changed while it was being recovered; try again.")
            fleet.routes.forget(shell.id)
            return recovered

    def _newest_state(
        self, shell: ShellRecord
    ) -> tuple[tuple[StoredPart, ...], ShellState, str, datetime, bool]:
        """The parts to start from, the state they were saved in, what they are, when they were
        taken, and whether they are the shell's saved state (else a snapshot of it)."""
        save = self.moves.get(shell.id)
        snaps = [s for s in self.ctx.store.list_snapshots(None, shell.id) if s.durable_at is not None]
        newest = max(snaps, key=lambda s: s.created_at, default=None)
        if save is not None and (newest is None or save.taken_at >= newest.created_at):
            what = f"its {save.state} state saved on node {save.taken_on}"
            return save.parts, save.state, what, save.taken_at, True
        if newest is not None:
            return newest.parts, ShellState.STOPPED, f"snapshot {newest.id}", newest.created_at, False
        raise InvalidState(
            f"Shell {shell.id} is lost and nothing of it is in the object store (no saved state, no "
            "durable snapshot): it cannot be started again. Delete it.",
            {"state": shell.state.value},
        )


async def _quietly(action: Any, what: str) -> None:
    try:
        await action
    except ShellsError as exc:
        log.warning("%s failed: %s", what, exc.message)
