"""The idle sweep's read (``Store.idle_candidates``) names exactly the shells the sweep may pause: running,
with an idle timeout, not held by the warm pool; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.store.repository import EventDraft, Store


def test_idle_candidates_are_running_shells_with_a_timeout(record_url: str) -> None:
    store = Store(record_url)
    store.migrate()
    now = datetime.now(UTC)
    base = ShellRecord(
        id="",
        tenant="default",
        owner="alice",
        name="",
        state=ShellState.CREATING,
        runtime=Runtime.MICROVM,
        language=Language.PYTHON,
        template="python:1",
        network=NetworkAccess(NetworkMode.SEALED),
        shape="s-1vcpu-512mb",
        region="local",
        created_at=now,
        updated_at=now,
    )
    shells = {
        "idle": (60, False, [ShellState.RUNNING]),
        "no-timeout": (None, False, [ShellState.RUNNING]),
        "zero": (0, False, [ShellState.RUNNING]),
        "pooled": (60, True, [ShellState.RUNNING]),
        "paused": (60, False, [ShellState.RUNNING, ShellState.PAUSED]),
        "creating": (60, False, []),
    }
    for name, (timeout_s, pooled, path) in shells.items():
        store.add_shell(
            dataclasses.replace(base, id=name, name=name, idle_timeout_s=timeout_s, pooled=pooled)
        )
        for state in path:
            draft = EventDraft(
                tenant="default", shell_id=name, principal="t", door="t", kind="state", action="t"
            )
            store.change_state(name, state, "", draft)
    assert store.idle_candidates() == [("idle", Runtime.MICROVM, 60)]
    store.close()
