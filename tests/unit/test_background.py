"""The one owner of the control plane's background loops."""

from __future__ import annotations

import asyncio

import pytest

from shells.control.background import Background

from ..support.waiting import eventually

pytestmark = pytest.mark.anyio


async def test_a_failing_step_is_tried_again_and_stop_ends_every_loop() -> None:
    loops = Background()
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        raise RuntimeError("one bad pass")

    loops.every("flaky", 0.001, flaky)
    loops.run("forever", lambda: asyncio.Event().wait())
    await eventually(lambda: len(calls) >= 3, what="three passes of a failing step")
    assert loops.names() == ["flaky", "forever"]
    await loops.stop()
    assert loops.names() == []
    loops.run("late", lambda: asyncio.Event().wait())  # a use case asking after shutdown
    assert loops.names() == []


async def test_a_loop_that_ended_is_started_again_but_never_twice_at_once() -> None:
    loops = Background()
    runs: list[int] = []
    release = asyncio.Event()

    async def once() -> None:
        runs.append(1)
        await release.wait()

    loops.run("watcher", once)
    loops.run("watcher", once)
    await eventually(lambda: runs == [1], what="the first run")
    release.set()
    await eventually(lambda: loops.names() == [], what="the loop's end")
    loops.run("watcher", once)
    await eventually(lambda: runs == [1, 1], what="the second run")
    await loops.stop()


async def test_a_singleton_step_runs_only_while_this_replica_leads() -> None:
    loops = Background()
    leading = False
    loops.leader = lambda: leading
    duty: list[int] = []
    everywhere: list[int] = []

    async def sweep() -> None:
        duty.append(1)

    async def local() -> None:
        everywhere.append(1)

    loops.every("the sweep", 0.001, sweep, singleton=True)
    loops.every("the sampler", 0.001, local)
    await eventually(lambda: len(everywhere) >= 20, what="the per-replica loop running")
    assert duty == []
    leading = True
    await eventually(lambda: len(duty) >= 3, what="the duty running once this replica leads")
    await loops.stop()


async def test_loops_that_ended_or_failed_are_forgotten() -> None:
    """Loops named per shell or key (an upload, a save, a wake's wait) end by the thousand on a busy
    server: none stays held once over, and one that failed says so in the log."""
    loops = Background()

    async def done() -> None:
        await asyncio.sleep(0)

    async def broken() -> None:
        raise RuntimeError("a bad loop")

    for i in range(100):
        loops.run(f"upload-{i}", done)
    loops.run("broken", broken)
    await eventually(lambda: not loops._tasks, what="every finished loop forgotten")
    assert loops.names() == []
    await loops.stop()
