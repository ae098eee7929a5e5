"""A create that the record's database cuts short after it recorded the shell (the node made it,
then the write that marks it running met the outage): the caller gets the retryable
``503 record_unavailable``, and once the database answers the shell is deleted, on the node too,
so a client that retries ends with one shell, not two. (``test_cluster_faults`` restarts a real
PostgreSQL under a cluster; here the outage is one refused write, so the moment is exact.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from shells.domain.errors import RecordUnavailable
from shells.domain.states import ShellState

from ..support.inprocess import serving

pytestmark = pytest.mark.anyio


async def test_a_create_cut_short_by_the_record_leaves_nothing_behind(tmp_path: Path) -> None:
    async with serving(tmp_path) as instance:
        store = instance.control.ctx.store
        change_state = store.change_state
        refused: list[str] = []

        def down_once(shell_id: str, target: ShellState, *args: Any) -> Any:
            if target is ShellState.RUNNING and not refused:
                refused.append(shell_id)
                raise RecordUnavailable("The record's database did not answer.", {"retry_after_s": 1})
            return change_state(shell_id, target, *args)

        store.change_state = down_once  # type: ignore[method-assign,assignment]
        async with instance.client() as client:
            async with instance.http() as http:
                r = await http.post("/v1/shells", json={"language": "bash"})
            assert (r.status_code, r.json()["error"]["code"]) == (503, "record_unavailable"), r.text
            assert r.headers["Retry-After"] == "1"
            (cut,) = refused
            with anyio.fail_after(10):
                while (rec := store.get_shell(cut)) is not None and rec.state is not ShellState.DELETED:
                    await anyio.sleep(0.05)
                while instance.node.shell_dir(cut).exists():
                    await anyio.sleep(0.05)
            assert "record's database stopped answering" in (rec.state_reason if rec else "")
            again = await client.create("bash")  # the retry
            assert [s.id for s in await client.list()] == [again.id]
