"""Every lifecycle action, driven through the real server and real crun."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shells.domain.errors import ActionNotSupported, InvalidState, ShellNotFound
from shells.sdk import Shells


def test_a_new_python_shell_runs_code_and_reports_the_exit_code(
    client: Shells, shell: dict[str, Any]
) -> None:
    assert shell["state"] == "running"
    assert shell["runtime"] == "container" and shell["language"] == "python"
    assert shell["network"] == {"mode": "sealed", "allow": []}
    assert shell["shape"] == "s-1vcpu-512mb"
    out = client.exec(shell["id"], ["python3", "-c", "print(6*7)"])
    assert out["stdout"] == "42\n" and out["exit_code"] == 0
    failed = client.exec(shell["id"], command="echo oops >&2; exit 3")
    assert failed["stderr"] == "oops\n" and failed["exit_code"] == 3


def test_exec_streams_chunks_in_order_then_the_exit(client: Shells, shell: dict[str, Any]) -> None:
    events = list(
        client.exec_stream(shell["id"], command="for i in 1 2 3; do echo $i; sleep 0.05; done; exit 7")
    )
    text = "".join(e["data"] for e in events if e["type"] == "stdout")
    assert text == "1\n2\n3\n"
    assert sum(e["type"] == "stdout" for e in events) >= 2, "output arrived as one lump, not streamed"
    assert events[-1]["type"] == "exit" and events[-1]["exit_code"] == 7


def test_exec_passes_env_cwd_stdin_and_enforces_the_timeout(
    client: Shells, make_shell: Callable[..., Any]
) -> None:
    sh = make_shell(env={"GREETING": "hello"})
    out = client.exec(
        sh["id"],
        command='echo "$GREETING $EXTRA"; pwd; cat',
        env={"EXTRA": "there"},
        cwd="/tmp",
        stdin="from stdin",
    )
    assert out["stdout"] == "hello there\n/tmp\nfrom stdin"
    slow = client.exec(sh["id"], ["sleep", "30"], timeout_s=0.5)
    assert slow["timed_out"] is True and slow["exit_code"] == 137


def test_list_shows_the_shell_and_get_returns_its_record(client: Shells, shell: dict[str, Any]) -> None:
    assert shell["id"] in {s["id"] for s in client.list()}
    assert client.get(shell["id"])["id"] == shell["id"]
    assert shell["id"] in {s["id"] for s in client.list(state="running", runtime="container")}


def test_files_written_outside_workspace_survive_restart_but_not_reinstall_os(
    client: Shells, shell: dict[str, Any]
) -> None:
    sid = shell["id"]
    client.write_file(sid, "/etc/marker", "system\n")
    client.write_file(sid, "/workspace/keep.txt", "mine\n")
    client.action(sid, "restart")
    assert client.read_file(sid, "/etc/marker") == b"system\n"
    out = client.action(sid, "reinstall_os")
    assert out["shell"]["id"] == sid and out["shell"]["state"] == "running"
    assert client.exec(sid, ["test", "-e", "/etc/marker"])["exit_code"] == 1
    assert client.read_file(sid, "/workspace/keep.txt") == b"mine\n"


def test_wipe_state_resets_root_and_workspace_and_keeps_the_id_running(
    client: Shells, shell: dict[str, Any]
) -> None:
    sid = shell["id"]
    client.write_file(sid, "/etc/marker", "x")
    client.write_file(sid, "/workspace/data.txt", "x")
    out = client.action(sid, "wipe_state")
    assert out["shell"]["state"] == "running"
    assert client.list_files(sid, "/workspace") == []
    assert client.exec(sid, ["test", "-e", "/etc/marker"])["exit_code"] == 1


def test_stop_keeps_the_filesystem_and_start_brings_it_back(client: Shells, shell: dict[str, Any]) -> None:
    sid = shell["id"]
    client.write_file(sid, "/workspace/a.txt", "kept")
    assert client.action(sid, "stop")["shell"]["state"] == "stopped"
    with pytest.raises(InvalidState):
        client.exec(sid, ["true"])
    with pytest.raises(InvalidState):
        client.action(sid, "stop")
    assert client.action(sid, "start")["shell"]["state"] == "running"
    assert client.read_file(sid, "/workspace/a.txt") == b"kept"


def test_snapshot_creates_a_restore_point_new_shells_start_from(
    client: Shells, shell: dict[str, Any], make_shell: Callable[..., Any]
) -> None:
    sid = shell["id"]
    client.write_file(sid, "/workspace/state.txt", "before")
    client.write_file(sid, "/opt/tool", "installed")
    snap = client.action(sid, "snapshot")["result"]["snapshot"]
    client.write_file(sid, "/workspace/state.txt", "after")
    assert snap["id"] in {s["id"] for s in client.snapshots(sid)}
    restored = make_shell(snapshot=snap["id"])
    assert restored["id"] != sid
    assert client.read_file(restored["id"], "/workspace/state.txt") == b"before"
    assert client.read_file(restored["id"], "/opt/tool") == b"installed"


def test_logs_return_the_agent_log(client: Shells, shell: dict[str, Any]) -> None:
    logs = client.action(shell["id"], "logs")["result"]["logs"]
    assert "shells-agent ready" in logs


def test_actions_the_container_class_lacks_are_a_typed_409(client: Shells, shell: dict[str, Any]) -> None:
    with pytest.raises(ActionNotSupported) as err:
        client.action(shell["id"], "pause")
    assert err.value.details["status"] == 409


def test_every_action_is_on_the_record(client: Shells, shell: dict[str, Any]) -> None:
    sid = shell["id"]
    client.exec(sid, ["true"])
    client.action(sid, "restart")
    kinds = [(e["kind"], e["action"]) for e in client.events(sid)]
    assert ("create", "create") in kinds
    assert ("exec", "exec") in kinds
    assert ("action", "restart") in kinds
    assert all(e["principal"] == "admin" for e in client.events(sid) if e["kind"] != "state")


def test_delete_releases_the_shell_and_its_id_is_gone(client: Shells) -> None:
    sid = client.create("bash")["id"]
    client.delete(sid)
    with pytest.raises(ShellNotFound):
        client.get(sid)
    with pytest.raises(ShellNotFound):
        client.delete(sid)
    assert sid not in {s["id"] for s in client.list()}
