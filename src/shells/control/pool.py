"""A warm pool of pre-started shells, so ``create`` only has to claim one.

Pool shells are ordinary shell records with ``pooled=True``: owned by nobody, listed to nobody, billed
to nobody. A claim flips the flag in one transaction and gives the record its owner, name, env and
a fresh ``created_at``; nothing inside the shell has been used, so it is indistinguishable from a
new one. Only the most common request is pooled: the default shape and sealed network, per
template in ``templates``. How many it keeps and starts at once follows demand (``pool_demand``):
the floor ``size`` when idle, more while creates come in, fewer again (the oldest pool shells
destroyed) when they stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from ..domain.ids import new_id
from ..domain.isolation import DEFAULT_LANGUAGE, PRESET_TEMPLATES, Language, Runtime
from ..domain.network import NetworkAccess, NetworkMode
from ..domain.shapes import DEFAULT_SHAPE
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .context import ControlContext
from .pool_demand import WINDOW_S, PoolDemand

log = logging.getLogger(__name__)
POOL_OWNER = "pool"
REFILL_DELAY_S = 0.25
"""After a claim, wait this long before starting a replacement, so the claimer's first exec (the
usual next call) does not queue behind the replacement's start on a small host."""
RESIZE_EVERY_S = WINDOW_S / 6
"""How often an idle pool looks again at its target (which falls as past creates age out)."""


class WarmPool:
    def __init__(
        self,
        ctx: ControlContext,
        size: int,
        templates: tuple[str, ...] = (PRESET_TEMPLATES[DEFAULT_LANGUAGE],),
    ) -> None:
        self.ctx = ctx
        self.size = max(0, size)
        """The floor: shells kept per template when nobody creates any."""
        self.templates = templates
        self.demand = PoolDemand(self.size, budget_bytes=ctx.settings.warm_pool_memory_mib * 1024 * 1024)
        self._wake = asyncio.Event()

    def claim(
        self, *, template: str, shape: str, network: NetworkAccess, runtime: Runtime
    ) -> ShellRecord | None:
        if self.size == 0 or runtime is not Runtime.CONTAINER or network.mode is not NetworkMode.SEALED:
            return None
        if template in self.templates and shape == DEFAULT_SHAPE:
            self.demand.note_create(time.monotonic())
        shell = self.ctx.store.claim_pooled(template, shape, network.mode.value)
        self._wake.set()
        return shell

    def start(self) -> None:
        if self.size > 0:
            self.ctx.background.run("the warm pool refill", self._refill_forever)

    async def _refill_forever(self) -> None:
        while True:
            try:
                await self._refill_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("warm pool refill failed; retrying in 5 s")
                await asyncio.sleep(5)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), RESIZE_EVERY_S)
            except TimeoutError:
                continue
            await asyncio.sleep(REFILL_DELAY_S)

    async def _refill_once(self) -> None:
        backend = self.ctx.backend(Runtime.CONTAINER)
        for template in self.templates:
            if backend.template_meta(template) is None:  # deleted; refilled once it is built again
                continue
            while True:
                have = [s for s in self.ctx.store.list_shells(None, pooled=True) if s.template == template]
                now = time.monotonic()
                target = self.demand.target(now)
                if len(have) > target:
                    await self._shrink(sorted(have, key=lambda s: s.created_at)[: len(have) - target])
                if len(have) >= target:
                    break
                starts = min(target - len(have), self.demand.parallel_starts(now))
                await asyncio.gather(*(self._start_one(template) for _ in range(starts)))

    async def _start_one(self, template: str) -> None:
        backend = self.ctx.backend(Runtime.CONTAINER)
        now = datetime.now(UTC)
        shell = ShellRecord(
            id=new_id("sh"),
            tenant="",
            owner=POOL_OWNER,
            name="",
            state=ShellState.CREATING,
            runtime=Runtime.CONTAINER,
            language=Language.BASH,
            template=template,
            network=NetworkAccess(),
            shape=DEFAULT_SHAPE,
            region=self.ctx.settings.region,
            node=self.ctx.node_for(Runtime.CONTAINER),
            created_at=now,
            updated_at=now,
            pooled=True,
        )
        self.ctx.store.add_shell(shell)
        try:
            await backend.create(self.ctx.spec(shell))
        except BaseException:
            self.ctx.store.purge_shell(shell.id)
            raise
        self.ctx.store.change_state(
            shell.id,
            ShellState.RUNNING,
            "",
            self.ctx.draft(None, shell, door="pool", kind="state", action="prewarm", outcome="running"),
        )

    async def _shrink(self, extra: list[ShellRecord]) -> None:
        """Destroy pool shells beyond the target; one a claim takes meanwhile is left to its user."""
        backend = self.ctx.backend(Runtime.CONTAINER)
        for shell in extra:
            if self.ctx.store.purge_shell(shell.id):
                await backend.destroy(shell.id)
