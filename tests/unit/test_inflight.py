"""The journal of actions in flight: written while an action runs, gone after, read back after a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from shells.control.inflight import Inflight, Intent
from shells.domain.capabilities import Capability


def test_an_entry_exists_exactly_while_the_action_runs(tmp_path: Path) -> None:
    journal = Inflight(tmp_path)
    with journal.recording("sh_1", Capability.RESTART, "alice"):
        assert journal.pending() == {"sh_1": Intent("sh_1", Capability.RESTART, "alice")}
    assert journal.pending() == {}


def test_an_action_that_raises_leaves_no_entry(tmp_path: Path) -> None:
    journal = Inflight(tmp_path)
    with pytest.raises(RuntimeError), journal.recording("sh_1", Capability.STOP, "alice"):
        raise RuntimeError("the backend failed")
    assert journal.pending() == {}


def test_a_crash_leaves_the_entry_for_start_up(tmp_path: Path) -> None:
    recording = Inflight(tmp_path).recording("sh_1", Capability.WIPE_STATE, "bob")
    recording.__enter__()  # and the process dies: no __exit__
    after_restart = Inflight(tmp_path)
    assert after_restart.pending() == {"sh_1": Intent("sh_1", Capability.WIPE_STATE, "bob")}
    after_restart.done("sh_1")
    assert after_restart.pending() == {}


@pytest.mark.parametrize("action", [Capability.LOGS, Capability.PAUSE, Capability.SNAPSHOT, Capability.FORK])
def test_actions_the_host_state_settles_are_not_written(tmp_path: Path, action: Capability) -> None:
    journal = Inflight(tmp_path)
    with journal.recording("sh_1", action, "alice"):
        assert journal.pending() == {}


def test_an_unreadable_entry_is_dropped(tmp_path: Path) -> None:
    (tmp_path / "inflight").mkdir()
    (tmp_path / "inflight" / "sh_1.json").write_text("{not json", encoding="utf-8")
    journal = Inflight(tmp_path)
    assert journal.pending() == {}
    assert not (tmp_path / "inflight" / "sh_1.json").exists()
