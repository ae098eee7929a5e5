"""A warm pool of pre-started shells, so ``create`` only has to claim one.

Pool shells are ordinary shell records with ``pooled=True``: owned by nobody, listed to nobody, billed
to nobody. A claim flips the flag in one transaction and gives the record its owner, name, env and
a fresh ``created_at``; nothing inside the shell has been used, so it is indistinguishable from a
new one. Only the most common request is pooled: the default shape and sealed network, per
template in ``templates``. How many it keeps and starts at once follows demand (``pool_demand``):
the floor ``size`` when idle, more while creates come in, fewer again (the oldest pool shells
destroyed) when they stop.

One pool per isolation class (``runtime``): the container class's, and the microvm class's
(``microvm_warm_pool_size``, off by default). A pooled VM is a restored VM that has run one exec
of ``true`` the host chose: under TCG a fresh QEMU translates the guest's whole exec path on the
first command (~150 ms), so the pool pays it instead of the claimer. Each VM is claimed once, by
one shell, like every pool shell; nothing of a user ever ran in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from ..domain.execution import ExecSpec
from ..domain.ids import new_id
from ..domain.isolation import DEFAULT_LANGUAGE, PRESET_TEMPLATES, Language, Runtime
from ..domain.limits import IDLE_SHELL_BYTES
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
        *,
        runtime: Runtime = Runtime.CONTAINER,
        shell_bytes: int = IDLE_SHELL_BYTES,
    ) -> None:
        """``shell_bytes``: what one pool shell of ``runtime`` is counted to hold (the memory bound)."""
        self.ctx = ctx
        self.size = max(0, size) if runtime in ctx.backends else 0
        """The floor: shells kept per template when nobody creates any."""
        self.templates = templates
        self.runtime = runtime
        self.demand = PoolDemand(
            self.size, budget_bytes=ctx.settings.warm_pool_memory_mib * 1024 * 1024, shell_bytes=shell_bytes
        )
        self._wake = asyncio.Event()

    def claim(
        self, *, template: str, shape: str, network: NetworkAccess, runtime: Runtime
    ) -> ShellRecord | None:
        if self.size == 0 or runtime is not self.runtime or network.mode is not NetworkMode.SEALED:
            return None
        if template in self.templates and shape == DEFAULT_SHAPE:
            self.demand.note_create(time.monotonic())
        shell = self.ctx.store.claim_pooled(template, shape, network.mode.value, runtime)
        self._wake.set()
        return shell

    def start(self) -> None:
        if self.size > 0:
            self.ctx.background.run(f"the {self.runtime} warm pool refill", self._refill_forever)

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
        backend = self.ctx.backend(self.runtime)
        for template in self.templates:
            if backend.template_meta(template) is None:  # deleted; refilled once it is built again
                continue
            while True:
                have = [
                    s
                    for s in self.ctx.store.list_shells(None, pooled=True)
                    if s.template == template and s.runtime is self.runtime
                ]
                now = time.monotonic()
                target = self.demand.target(now)
                if len(have) > target:
                    await self._shrink(sorted(have, key=lambda s: s.created_at)[: len(have) - target])
                if len(have) >= target:
                    break
                starts = min(target - len(have), self.demand.parallel_starts(now))
                await asyncio.gather(*(self._start_one(template) for _ in range(starts)))

    async def _start_one(self, template: str) -> None:
        backend = self.ctx.backend(self.runtime)
        now = datetime.now(UTC)
        shell = ShellRecord(
            id=new_id("sh"),
            tenant="",
            owner=POOL_OWNER,
            name="",
            state=ShellState.CREATING,
            runtime=self.runtime,
            language=Language.BASH,
            template=template,
            network=NetworkAccess(),
            shape=DEFAULT_SHAPE,
            region=self.ctx.settings.region,
            node=self.ctx.node_for(self.runtime),
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
        if self.runtime is Runtime.MICROVM:
            try:
                await self._first_exec(shell.id)
            except BaseException:
                await self._shrink([shell])
                raise
        self.ctx.store.change_state(
            shell.id,
            ShellState.RUNNING,
            "",
            self.ctx.draft(None, shell, door="pool", kind="state", action="prewarm", outcome="running"),
        )

    async def _first_exec(self, host_id: str) -> None:
        """Run ``true`` in a new pool VM, so its QEMU has translated the guest's exec path before a
        claimer's first command (see the module's docstring)."""
        async for _ in self.ctx.backend(self.runtime).exec(host_id, ExecSpec(argv=("true",), timeout_s=30)):
            pass  # run to its exit

    async def _shrink(self, extra: list[ShellRecord]) -> None:
        """Destroy pool shells beyond the target; one a claim takes meanwhile is left to its user."""
        backend = self.ctx.backend(self.runtime)
        for shell in extra:
            if self.ctx.store.purge_shell(shell.id):
                await backend.destroy(shell.id)


class WarmPools:
    """The pools of every class: a create asks the one of its class."""

    def __init__(self, *pools: WarmPool) -> None:
        self.pools = pools

    def claim(
        self, *, template: str, shape: str, network: NetworkAccess, runtime: Runtime
    ) -> ShellRecord | None:
        for pool in self.pools:
            if pool.runtime is runtime:
                return pool.claim(template=template, shape=shape, network=network, runtime=runtime)
        return None
