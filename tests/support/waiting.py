"""Bounded waits: a test waits for a condition, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

POLL_S = 0.02


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(POLL_S)


async def eventually(
    condition: Callable[[], Awaitable[object] | object], timeout_s: float = 10.0, what: str = "the condition"
) -> None:
    """``wait_until`` for async tests: ``condition`` may be a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        await anyio.sleep(POLL_S)
