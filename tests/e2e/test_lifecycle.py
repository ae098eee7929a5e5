"""Every lifecycle action, driven through the real server, for every isolation class this host runs
(container: real crun; microvm: real QEMU)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shells.domain.errors import ActionNotSupported, Conflict, InvalidState, ShellNotFound
from shells.sdk import CommandExit, CommandOutput, NetworkPolicy, Shell, Shells


@pytest.fixture
def make_class_shell(make_shell: Callable[..., Shell], runtime: str) -> Callable[..., Shell]:
    """The session's shell maker, in the class under test."""

    def make(language: str = "python", **kwargs: object) -> Shell:
        return make_shell(language, runtime=runtime, **kwargs)

    return make


@pytest.fixture
def class_shell(make_class_shell: Callable[..., Shell]) -> Shell:
    """A python shell in the class under test, deleted when the test ends."""
    return make_class_shell()


def test_a_new_python_shell_runs_code_and_reports_the_exit_code(class_shell: Shell, runtime: str) -> None:
    assert class_shell.info.state == "running"
    assert class_shell.info.runtime == runtime and class_shell.info.language == "python"
    assert class_shell.info.network == NetworkPolicy(mode="sealed", allow=())
    assert class_shell.info.shape == "s-1vcpu-512mb"
    out = class_shell.commands.run(["python3", "-c", "print(6*7)"])
    assert out.stdout == "42\n" and out.exit_code == 0
    failed = class_shell.commands.run("echo oops >&2; exit 3")
    assert failed.stderr == "oops\n" and failed.exit_code == 3


def test_exec_streams_chunks_in_order_then_the_exit(class_shell: Shell) -> None:
    with class_shell.commands.stream("for i in 1 2 3; do echo $i; sleep 0.05; done; exit 7") as stream:
        events = list(stream)
    text = "".join(e.data for e in events if isinstance(e, CommandOutput) and e.stream == "stdout")
    assert text == "1\n2\n3\n"
    assert sum(isinstance(e, CommandOutput) for e in events) >= 2, "output arrived as one lump, not streamed"
    assert isinstance(events[-1], CommandExit) and events[-1].exit_code == 7


def test_exec_passes_env_cwd_stdin_and_enforces_the_timeout(make_class_shell: Callable[..., Shell]) -> None:
    sh = make_class_shell(env={"GREETING": "hello"})
    out = sh.commands.run(
        'echo "$GREETING $EXTRA"; pwd; cat', env={"EXTRA": "there"}, cwd="/tmp", stdin="from stdin"
    )
    assert out.stdout == "hello there\n/tmp\nfrom stdin"
    slow = sh.commands.run(["sleep", "30"], timeout=0.5)
    assert slow.timed_out is True and slow.exit_code == 137


def test_list_shows_the_shell_and_get_returns_its_record(
    client: Shells, class_shell: Shell, runtime: str
) -> None:
    assert class_shell.id in {s.id for s in client.list()}
    assert client.get(class_shell.id).info == class_shell.info
    assert class_shell.id in {s.id for s in client.list(state="running", runtime=runtime)}


def test_files_written_outside_workspace_survive_restart_but_not_reinstall_os(class_shell: Shell) -> None:
    class_shell.files.write("/etc/marker", "system\n")
    class_shell.files.write("/workspace/keep.txt", "mine\n")
    class_shell.restart()
    assert class_shell.files.read("/etc/marker") == b"system\n"
    class_shell.reinstall_os()
    assert class_shell.info.state == "running"
    assert class_shell.commands.run(["test", "-e", "/etc/marker"]).exit_code == 1
    assert class_shell.files.read("/workspace/keep.txt") == b"mine\n"


def test_wipe_state_resets_root_and_workspace_and_keeps_the_id_running(class_shell: Shell) -> None:
    class_shell.files.write("/etc/marker", "x")
    class_shell.files.write("/workspace/data.txt", "x")
    class_shell.wipe_state()
    assert class_shell.info.state == "running"
    assert class_shell.files.list("/workspace") == []
    assert class_shell.commands.run(["test", "-e", "/etc/marker"]).exit_code == 1


def test_stop_keeps_the_filesystem_and_start_brings_it_back(class_shell: Shell) -> None:
    class_shell.files.write("/workspace/a.txt", "kept")
    class_shell.stop()
    assert class_shell.info.state == "stopped"
    with pytest.raises(InvalidState):
        class_shell.commands.run(["true"])
    with pytest.raises(InvalidState):
        class_shell.stop()
    class_shell.start()
    assert class_shell.info.state == "running"
    assert class_shell.files.read("/workspace/a.txt") == b"kept"


def test_snapshot_creates_a_restore_point_new_shells_start_from(
    client: Shells, class_shell: Shell, make_class_shell: Callable[..., Shell]
) -> None:
    class_shell.files.write("/workspace/state.txt", "before")
    class_shell.files.write("/opt/tool", "installed")
    snap = class_shell.snapshot()
    class_shell.files.write("/workspace/state.txt", "after")
    assert snap.id in {s.id for s in client.snapshots.list(class_shell.id)}
    restored = make_class_shell(snapshot=snap.id)
    assert restored.id != class_shell.id
    assert restored.files.read("/workspace/state.txt") == b"before"
    assert restored.files.read("/opt/tool") == b"installed"


def test_logs_return_the_agent_log(class_shell: Shell) -> None:
    assert "shells-agent ready" in class_shell.logs()


def test_pause_is_a_typed_409_where_the_class_cannot_pause(class_shell: Shell, runtime: str) -> None:
    if runtime == "microvm":  # it can: the round trip works
        class_shell.pause()
        assert class_shell.info.state == "paused"
        class_shell.resume()
        assert class_shell.info.state == "running"
        return
    with pytest.raises(ActionNotSupported) as err:
        class_shell.pause()
    assert isinstance(err.value, Conflict) and err.value.code == "action_not_supported"


def test_every_action_is_on_the_record(class_shell: Shell) -> None:
    class_shell.commands.run(["true"])
    class_shell.restart()
    events = class_shell.events()
    kinds = [(e.kind, e.action) for e in events]
    assert ("create", "create") in kinds
    assert ("exec", "exec") in kinds
    assert ("action", "restart") in kinds
    assert all(e.principal == "admin" for e in events if e.kind != "state")


def test_delete_releases_the_shell_and_its_id_is_gone(client: Shells) -> None:
    sh = client.create("bash")
    assert sh.kill() is True
    with pytest.raises(ShellNotFound):
        client.get(sh.id)
    assert sh.kill() is False
    assert sh.id not in {s.id for s in client.list()}
