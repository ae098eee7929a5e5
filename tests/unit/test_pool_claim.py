"""A create claims a pool shell of its own isolation class only: the container and microvm pools
share the record's ``pooled`` rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.store.repository import EventDraft, Store


@pytest.fixture
def store(migrated_url: str) -> Iterator[Store]:
    s = Store(migrated_url)
    s.migrate()
    yield s
    s.close()


def pooled(store: Store, shell_id: str, runtime: Runtime) -> None:
    now = datetime.now(UTC)
    store.add_shell(
        ShellRecord(
            id=shell_id,
            tenant="",
            owner="pool",
            name="",
            state=ShellState.CREATING,
            runtime=runtime,
            language=Language.BASH,
            template="python:1",
            network=NetworkAccess(),
            shape="s-1vcpu-512mb",
            region="local",
            created_at=now,
            updated_at=now,
            pooled=True,
        )
    )
    draft = EventDraft("", shell_id, "pool", "pool", "state", "prewarm", "running")
    store.change_state(shell_id, ShellState.RUNNING, "", draft)


def test_a_claim_takes_a_pool_shell_of_its_own_class_only(store: Store) -> None:
    pooled(store, "sh_vm", Runtime.MICROVM)
    assert store.claim_pooled("python:1", "s-1vcpu-512mb", "sealed", Runtime.CONTAINER) is None
    pooled(store, "sh_ct", Runtime.CONTAINER)
    claimed = store.claim_pooled("python:1", "s-1vcpu-512mb", "sealed", Runtime.CONTAINER)
    assert claimed is not None and claimed.id == "sh_ct"
    claimed = store.claim_pooled("python:1", "s-1vcpu-512mb", "sealed", Runtime.MICROVM)
    assert claimed is not None and claimed.id == "sh_vm"
    assert store.claim_pooled("python:1", "s-1vcpu-512mb", "sealed", Runtime.MICROVM) is None
