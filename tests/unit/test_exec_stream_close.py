"""A client that leaves an exec stream while the server waits for the command's next event: the
request's cancellation (anyio's, delivered again at every await) must not cut the wait for the
cancelled read short, or the stream's close would run while that read is still inside the command's
event stream ("aclose(): asynchronous generator is already running"), and its clean-up after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
import pytest

from shells.api.drain import Drain
from shells.api.exec_stream import _ndjson
from shells.domain.execution import ExecEvent, ExecStarted, collect

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Command:
    """A command's events: started, then nothing until it is closed; its clean-up takes a moment."""

    def __init__(self) -> None:
        self.cleaned_up = False

    async def events(self) -> AsyncIterator[ExecEvent]:
        try:
            yield ExecStarted(pid=7)
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # e.g. closing the agent channel, writing the audit row
            self.cleaned_up = True


async def left_after(consume: object) -> BaseException | None:
    """Run ``consume`` in a task group that is cancelled after 0.1 s, as Starlette does when the
    client goes; what it raised."""
    raised: BaseException | None = None

    async def body() -> None:
        nonlocal raised
        try:
            await consume()  # type: ignore[operator]
        except BaseException as exc:
            raised = exc
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(body)
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    return raised


async def test_a_streamed_command_is_closed_once_its_pending_read_ended() -> None:
    command = Command()
    events = command.events()
    first = await anext(events)

    async def consume() -> None:
        async for _ in _ndjson(first, events, Drain(1.0)):
            pass

    raised = await left_after(consume)
    assert isinstance(raised, asyncio.CancelledError), raised
    assert command.cleaned_up


async def test_a_waited_command_is_cancelled_to_its_end() -> None:
    command = Command()

    async def consume() -> None:
        await Drain(1.0).run(collect(command.events()))

    raised = await left_after(consume)
    assert isinstance(raised, asyncio.CancelledError), raised
    assert command.cleaned_up
