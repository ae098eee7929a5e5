"""Start-up reconciliation after a crash cut a transition short, against a real SQLite store and a
backend that reports a chosen host state: actions written down as in flight are finished (or the
shell is failed with why), and a pause or resume the host completed is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from shells.control.context import ControlContext
from shells.control.inflight import Inflight
from shells.control.reconcile import reconcile
from shells.domain.capabilities import COMMON_CAPABILITIES, SUSPENDABLE, Capability
from shells.domain.errors import RuntimeFailure
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.runtime.backend import Backend, HostInventory, ShellSpec
from shells.settings import Settings
from shells.store.repository import EventDraft, Store

pytestmark = pytest.mark.anyio


class HostBackend:
    """Just enough of a backend: a host state to report and a log of what was asked of it."""

    runtime = Runtime.MICROVM
    network_modes = frozenset(NetworkMode)

    def __init__(self, inventory: HostInventory, capabilities: frozenset[Capability] = SUSPENDABLE) -> None:
        self.inv = inventory
        self.capabilities = capabilities
        self.calls: list[str] = []
        self.fail_start = False

    async def inventory(self) -> HostInventory:
        return self.inv

    async def stop(self, host_id: str) -> None:
        self.calls.append(f"stop {host_id}")

    async def start(self, spec: ShellSpec) -> None:
        self.calls.append(f"start {spec.host_id}")
        if self.fail_start:
            raise RuntimeFailure("QEMU did not start: out of memory")

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        self.calls.append(f"reset {spec.host_id} wipe={wipe_workspace}")

    async def destroy(self, host_id: str) -> None:
        self.calls.append(f"destroy {host_id}")

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self.calls.append(f"delete_snapshot {snapshot_id}")


@pytest.fixture
def store(migrated_url: str) -> Iterator[Store]:
    s = Store(migrated_url)
    s.migrate()
    yield s
    s.close()


def context(tmp_path: Path, store: Store, backend: HostBackend) -> ControlContext:
    """A control context over the partial backend (it has what reconciliation calls)."""
    return ControlContext(Settings(data_dir=tmp_path), store, {Runtime.MICROVM: cast(Backend, backend)})


def shell_in(store: Store, shell_id: str, state: ShellState) -> None:
    now = datetime.now(UTC)
    store.add_shell(
        ShellRecord(
            id=shell_id,
            tenant="default",
            owner="alice",
            name=shell_id,
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
    )
    path = {ShellState.PAUSED: [ShellState.RUNNING], ShellState.STOPPED: [ShellState.RUNNING]}.get(state, [])
    for step in [*path, state]:
        draft = EventDraft(
            tenant="default", shell_id=shell_id, principal="t", door="t", kind="state", action="t"
        )
        store.change_state(shell_id, step, "", draft)


def state_of(store: Store, shell_id: str) -> tuple[ShellState, str]:
    shell = store.get_shell(shell_id)
    assert shell is not None
    return shell.state, shell.state_reason


LEFT_BEHIND: list[AbstractContextManager[None]] = []
"""Recordings entered and never exited (the server died), kept so that no finalizer exits them."""


def crashed_during(tmp_path: Path, shell_id: str, action: Capability) -> None:
    recording = Inflight(tmp_path).recording(shell_id, action, "alice")
    recording.__enter__()
    LEFT_BEHIND.append(recording)


async def test_a_restart_cut_short_is_finished_not_reported_as_a_host_restart(
    store: Store, tmp_path: Path
) -> None:
    shell_in(store, "sh_r", ShellState.RUNNING)
    crashed_during(tmp_path, "sh_r", Capability.RESTART)
    backend = HostBackend(HostInventory(stored={"sh_r"}))  # stopped, not started again yet
    report = await reconcile(context(tmp_path, store, backend))
    assert backend.calls == ["stop sh_r", "start sh_r"]
    assert state_of(store, "sh_r") == (ShellState.RUNNING, "")
    assert report.finished == ["sh_r"] and report.stopped == []
    assert Inflight(tmp_path).pending() == {}


async def test_a_stop_cut_short_on_a_paused_shell_is_finished(store: Store, tmp_path: Path) -> None:
    shell_in(store, "sh_p", ShellState.PAUSED)
    crashed_during(tmp_path, "sh_p", Capability.STOP)
    backend = HostBackend(HostInventory(paused={"sh_p"}, stored={"sh_p"}))
    await reconcile(context(tmp_path, store, backend))
    assert backend.calls == ["stop sh_p"]
    assert state_of(store, "sh_p") == (ShellState.STOPPED, "stopped by alice")


async def test_a_start_that_cannot_be_finished_fails_the_shell_with_the_true_reason(
    store: Store, tmp_path: Path
) -> None:
    shell_in(store, "sh_s", ShellState.STOPPED)
    crashed_during(tmp_path, "sh_s", Capability.START)
    backend = HostBackend(HostInventory(stored={"sh_s"}))
    backend.fail_start = True
    await reconcile(context(tmp_path, store, backend))
    state, reason = state_of(store, "sh_s")
    assert state is ShellState.FAILED
    assert "'start' was cut short by a server crash" in reason and "out of memory" in reason


async def test_a_wipe_cut_short_is_done_again_and_a_running_shell_started(
    store: Store, tmp_path: Path
) -> None:
    shell_in(store, "sh_w", ShellState.RUNNING)
    crashed_during(tmp_path, "sh_w", Capability.WIPE_STATE)
    backend = HostBackend(HostInventory(stored={"sh_w"}))
    await reconcile(context(tmp_path, store, backend))
    assert backend.calls == ["stop sh_w", "reset sh_w wipe=True", "start sh_w"]
    assert state_of(store, "sh_w") == (ShellState.RUNNING, "")


async def test_a_pause_or_resume_the_host_completed_is_recorded(store: Store, tmp_path: Path) -> None:
    shell_in(store, "sh_paused_on_host", ShellState.RUNNING)
    shell_in(store, "sh_resumed_on_host", ShellState.PAUSED)
    inv = HostInventory(
        running={"sh_resumed_on_host"},
        paused={"sh_paused_on_host"},
        stored={"sh_paused_on_host", "sh_resumed_on_host"},
    )
    backend = HostBackend(inv)
    await reconcile(context(tmp_path, store, backend))
    assert state_of(store, "sh_paused_on_host")[0] is ShellState.PAUSED
    assert state_of(store, "sh_resumed_on_host") == (ShellState.RUNNING, "")
    assert backend.calls == []


async def test_a_class_that_cannot_pause_is_not_taken_for_paused(store: Store, tmp_path: Path) -> None:
    """A container reported ``paused`` is frozen (mid-snapshot), not paused by anyone."""
    shell_in(store, "sh_c", ShellState.RUNNING)
    backend = HostBackend(HostInventory(paused={"sh_c"}, stored={"sh_c"}), capabilities=COMMON_CAPABILITIES)
    await reconcile(context(tmp_path, store, backend))
    assert state_of(store, "sh_c")[0] is ShellState.RUNNING


async def test_without_an_entry_vanished_processes_still_mean_stopped(store: Store, tmp_path: Path) -> None:
    shell_in(store, "sh_v", ShellState.RUNNING)
    backend = HostBackend(HostInventory(stored={"sh_v"}))
    await reconcile(context(tmp_path, store, backend))
    state, reason = state_of(store, "sh_v")
    assert state is ShellState.STOPPED and "host restart?" in reason


async def test_an_action_whose_outcome_was_recorded_is_not_done_twice(store: Store, tmp_path: Path) -> None:
    """The crash came after the record changed, before the entry was removed."""
    shell_in(store, "sh_started", ShellState.RUNNING)
    crashed_during(tmp_path, "sh_started", Capability.START)
    backend = HostBackend(HostInventory(running={"sh_started"}, stored={"sh_started"}))
    report = await reconcile(context(tmp_path, store, backend))
    assert backend.calls == [] and report.adopted == ["sh_started"]
    assert Inflight(tmp_path).pending() == {}
