"""The warm pool grows with the create rate (and its claims stay indistinguishable from new shells)."""

from __future__ import annotations

import time
from pathlib import Path

from shells.store.repository import Store

from .harness import running_server

CREATES = 30


def _pooled(data_dir: Path) -> int:
    store = Store(f"sqlite:///{data_dir / 'shells.db'}")
    try:
        return sum(1 for s in store.list_shells(None, pooled=True) if s.state == "running")
    finally:
        store.close()


def test_creates_in_a_loop_grow_the_pool_past_its_floor(data_root: Path) -> None:
    with running_server(data_root / "pool-adapts", warm_pool=2) as server, server.client() as client:
        server.wait_pool_ready()
        for _ in range(CREATES):  # an agent creating shells in a loop: 30 within the 30 s window
            with client.create("python") as shell:
                assert shell.commands.run("echo hi").stdout == "hi\n"
        # 30 creates in the window ask for five seconds of that rate: more than the floor of 2.
        deadline = time.monotonic() + 30
        while _pooled(server.data_dir) <= 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pooled(server.data_dir) > 2
