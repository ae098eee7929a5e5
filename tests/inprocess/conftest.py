"""Fixtures of the in-process tests: one instance on the fake node per test (no root needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shells.sdk import AsyncShells

from ..support.inprocess import BlockingInstance, Instance, serving, serving_blocking


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def instance(tmp_path: Path) -> AsyncIterator[Instance]:
    async with serving(tmp_path) as running:
        yield running


@pytest.fixture
async def admin(instance: Instance) -> AsyncIterator[AsyncShells]:
    """The async SDK as the instance's admin."""
    async with instance.client() as client:
        yield client


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[BlockingInstance]:
    """An instance for synchronous callers (the sync SDK, the CLI)."""
    with serving_blocking(tmp_path) as running:
        yield running
