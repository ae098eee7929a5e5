"""The sync SDK is generated from the async one: the rules do what they say, and nothing is stale."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_rules_turn_async_code_into_its_sync_twin() -> None:
    source = """import anyio
from contextlib import asynccontextmanager
pytestmark = pytest.mark.anyio

class AsyncFiles(httpx.AsyncBaseTransport):
    async def handle_async_request(self, r: AsyncIterator[bytes]) -> None:
        async with await anyio.open_file(p) as f:
            async for chunk in r.aiter_bytes():
                await f.write(chunk)
        await anyio.sleep(1)
        await self.aclose()
        return await anext(it)
"""
    expected = """import time
from contextlib import contextmanager

class Files(httpx.BaseTransport):
    def handle_request(self, r: Iterator[bytes]) -> None:
        with open(p) as f:
            for chunk in r.iter_bytes():
                f.write(chunk)
        time.sleep(1)
        self.close()
        return next(it)
"""
    assert _unasync().unasync_text(source) == expected


def test_words_that_only_look_async_are_left_alone() -> None:
    text = "asyncio awaiting Asyncish reader aclosed 'async with me'"
    assert _unasync().unasync_text(text) == "asyncio awaiting Asyncish reader aclosed 'with me'"


def test_the_generated_sync_files_are_up_to_date() -> None:
    stale = _unasync().stale()
    assert stale == [], f"run: python scripts/unasync.py (stale: {stale})"
