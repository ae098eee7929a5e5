"""Request bodies and stream lines: the JSON the SDK writes and reads."""

from __future__ import annotations

from datetime import UTC, datetime

from shells.sdk.models import (
    BuildDone,
    BuildStep,
    CommandExit,
    CommandOutput,
    CommandResult,
    CommandStarted,
    Event,
    Port,
    ShellInfo,
    Template,
    TermCredential,
    from_wire,
)
from shells.sdk.wire import BUILD_EVENTS, COMMAND_EVENTS, command_body, create_body


def test_create_sends_only_what_was_given_and_defaults_to_bash() -> None:
    assert create_body(None, {}) == {"language": "bash"}
    assert create_body("python", {"shape": None, "env": {"A": "1"}}) == {
        "language": "python",
        "env": {"A": "1"},
    }
    assert create_body(None, {"snapshot": "snap_1"}) == {"snapshot": "snap_1"}
    assert create_body("rust", {"network": "localhost"})["network"] == "localhost"


def test_an_allowlist_implies_internet_and_lists_become_json_lists() -> None:
    body = create_body("bash", {"allow": ("example.org:443",), "networks": ("backend",)})
    assert body["network"] == {"mode": "internet", "allow": ["example.org:443"]}
    assert body["networks"] == ["backend"]


def test_a_string_is_a_shell_command_and_a_list_or_args_is_argv() -> None:
    common = {"env": None, "cwd": None, "stdin": None, "timeout": None}
    assert command_body("ls -l | wc -l", None, **common) == {"command": "ls -l | wc -l"}
    assert command_body("ls", ["-l", "a b"], **common) == {"cmd": ["ls", "-l", "a b"]}
    assert command_body(["ls", "-l"], ["x"], **common) == {"cmd": ["ls", "-l", "x"]}
    full = command_body("cat", None, env={"A": "1"}, cwd="/tmp", stdin=b"\x00\xff", timeout=1.5)
    assert full == {"command": "cat", "env": {"A": "1"}, "cwd": "/tmp", "stdin_b64": "AP8=", "timeout_s": 1.5}
    assert command_body("cat", None, env={}, cwd=None, stdin="text", timeout=None)["stdin"] == "text"


def test_stream_lines_become_typed_events_and_results() -> None:
    exit_line = {
        "type": "exit",
        "exit_code": 3,
        "signal": None,
        "timed_out": False,
        "duration_ms": 5.0,
        "new": 1,
    }
    assert COMMAND_EVENTS["exit"](exit_line) == CommandExit(exit_code=3, duration_ms=5.0)
    result = from_wire(CommandResult, {**exit_line, "stdout": "o", "stderr": "e"})
    assert (result.stdout, result.stderr, result.exit_code, result.ok) == ("o", "e", 3, False)
    assert COMMAND_EVENTS["stderr"]({"type": "stderr", "data": "x"}) == CommandOutput(
        stream="stderr", data="x"
    )
    assert COMMAND_EVENTS["started"]({"type": "started", "pid": 7}) == CommandStarted(pid=7)
    line = {"type": "cached", "template": {"name": "py:1", "created_at": "2025-01-02T03:04:05+00:00"}}
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert BUILD_EVENTS["cached"](line) == BuildDone(
        template=Template(name="py:1", created_at=created), cached=True
    )
    assert BUILD_EVENTS["step"]({"type": "step", "index": 2, "total": 5, "name": "apt"}) == BuildStep(
        index=2, total=5, name="apt"
    )


def test_a_shell_record_parses_its_nested_policy_and_ignores_new_fields() -> None:
    info = ShellInfo.parse(
        {
            "id": "sh_1",
            "name": "n",
            "state": "running",
            "network": {"mode": "internet", "allow": ["a:1"]},
            "future": 1,
        }
    )
    assert info.network.mode == "internet" and info.network.allow == ("a:1",)


def test_event_times_become_datetimes() -> None:
    line = {
        "id": 1,
        "at": "2025-01-02T03:04:05+00:00",
        "shell_id": "sh_1",
        "principal": "admin",
        "door": "rest",
    }
    event = from_wire(Event, {**line, "kind": "exec", "action": "exec", "outcome": "ok"})
    assert event.at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_credentials_are_masked_in_repr() -> None:
    credential = TermCredential(token="s3cret", url="wss://x")
    assert "s3cret" not in repr(credential) and "wss://x" in repr(credential)
    assert credential.token == "s3cret"
    assert "s3cret" not in repr(Port(port=80, url="https://p", token="s3cret"))
