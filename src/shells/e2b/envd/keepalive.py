"""Quiet streams (a command without output, a directory without changes) carry a keepalive every
interval, as envd's do: proxies and the SDK's read timeouts then see traffic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

T = TypeVar("T")
KEEPALIVE_S = 50.0
"""Default seconds between keepalives (the SDK's ``Keepalive-Ping-Interval`` header overrides it)."""


def interval(headers: Mapping[str, str]) -> float:
    try:
        return max(1.0, float(headers.get("keepalive-ping-interval", KEEPALIVE_S)))
    except ValueError:
        return KEEPALIVE_S


async def with_keepalive(items: AsyncIterator[T], every: float) -> AsyncIterator[T | None]:
    """``items``, with a None after each ``every`` seconds without one; closing this closes them."""
    iterator = aiter(items)
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
