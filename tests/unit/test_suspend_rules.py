"""The pure rules behind pause on idle and fork: when a shell is due, what a fork count and name are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shells.control.fork import child_record
from shells.control.requests import MAX_NAME, CreateShellRequest, parse_fork_count
from shells.control.suspend import idle_due
from shells.domain.errors import InvalidRequest
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState


def test_a_shell_is_due_once_its_timeout_has_passed_and_never_without_one() -> None:
    assert not idle_due(100.0, 159.9, 60)
    assert idle_due(100.0, 160.0, 60)
    assert not idle_due(0.0, 1e9, None)
    assert not idle_due(0.0, 1e9, 0)


@pytest.mark.parametrize("body", [{}, {"count": 1}, {"count": 16}])
def test_fork_counts_from_one_to_sixteen_are_accepted(body: dict[str, int]) -> None:
    assert parse_fork_count(body) == body.get("count", 1)


@pytest.mark.parametrize("body", [{"count": 0}, {"count": 17}, {"count": "2"}, {"count": True}, {"n": 2}])
def test_other_fork_bodies_are_refused_naming_the_fix(body: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_fork_count(body)
    assert "count" in err.value.message or "n" in err.value.message


def test_idle_timeout_is_optional_whole_seconds_up_to_a_week() -> None:
    assert CreateShellRequest.parse({"language": "python"}).idle_timeout_s is None
    assert CreateShellRequest.parse({"language": "python", "idle_timeout_s": 0}).idle_timeout_s == 0
    for bad in (-1, 1.5, 8 * 24 * 3600, False):
        with pytest.raises(InvalidRequest):
            CreateShellRequest.parse({"language": "python", "idle_timeout_s": bad})


def test_a_fork_copies_the_parent_but_has_its_own_id_name_and_state() -> None:
    now = datetime.now(UTC)
    parent = ShellRecord(
        id="sh_parent",
        tenant="t",
        owner="alice",
        name="x" * MAX_NAME,
        state=ShellState.PAUSED,
        runtime=Runtime.MICROVM,
        language=Language.GO,
        template="go:1",
        network=NetworkAccess(),
        shape="s-1vcpu-512mb",
        region="local",
        created_at=now,
        updated_at=now,
        env={"A": "1"},
        labels={"team": "a"},
        source_snapshot="snap_1",
        idle_timeout_s=60,
    )
    child = child_record(parent, "bob", 12, now)
    assert child.id != parent.id and child.id.startswith("sh")
    assert child.name.endswith("-fork-12") and len(child.name) == MAX_NAME
    assert child.state is ShellState.CREATING and child.owner == "bob"
    assert (child.template, child.shape, child.runtime, child.idle_timeout_s) == (
        "go:1",
        parent.shape,
        parent.runtime,
        60,
    )
    assert child.env == parent.env and child.env is not parent.env
    assert child.source_snapshot is None
