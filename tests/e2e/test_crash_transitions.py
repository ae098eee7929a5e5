"""Transitions cut short, through the real server and real QEMU: nothing acknowledged is lost when a
paused microvm is stopped, a ``kill -9`` of the server at a named moment of a resume, a pause or a
restart leaves a usable shell and no stray QEMU, and fork/prune/fork loops never race the clean-up.

The server kills itself at the exact moment (``runtime.faults``: ``SHELLS_TEST_CRASH_AT``); a crash
timed from outside would hit a different step on every run. One server for the module, restarted on
its data dir after each crash, and few VMs: they run under TCG here."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shells.runtime.faults import CRASH_ENV, FAIL_ENV
from shells.runtime.microvm.backend import MicrovmBackend
from shells.runtime.microvm.vmnet import TAP, TAP_IP
from shells.sdk import Shell, Shells
from shells.settings import Settings
from shells.store.repository import Store

from .harness import ServerProcess, running_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")


@pytest.fixture(scope="module")
def srv(data_root: Path) -> Iterator[ServerProcess]:
    env = {"SHELLS_QUOTA_MAX_SHELLS": "12", "SHELLS_QUOTA_MAX_VCPUS": "12"}
    with running_server(data_root / "crash-transitions", warm_pool=0, env=env) as server:
        yield server
        _restart(server)  # no fault left set for the purge


@pytest.fixture
def make_vm(srv: ServerProcess) -> Iterator[Callable[..., Shell]]:
    """Shells (microvm unless asked) for one test, through a client that lives as long as the test
    (a handle is good until the server restarts; after that, tests take new ones from a new client)."""
    created: list[str] = []
    with srv.client() as client:

        def make(runtime: str = "microvm", **kwargs: Any) -> Shell:
            shell = client.create("python", runtime=runtime, **kwargs)
            created.append(shell.id)
            return shell

        yield make
    with srv.client() as c:
        for shell_id in created:
            c.get(shell_id).kill()


def _restart(server: ServerProcess, **faults: str) -> None:
    """Kill the server (if it still runs) and start it again on its data dir with ``faults`` set."""
    server.kill9()
    for name in (CRASH_ENV, FAIL_ENV):
        server.env.pop(name, None)
    server.env.update(faults)
    server.start()


def _crash_during(server: ServerProcess, moment: str, action: Callable[[Shells], object]) -> None:
    """Restart the server set to kill itself at ``moment``, do ``action`` (which gets there), then
    restart it as a plain server, as an operator would after the crash."""
    _restart(server, **{CRASH_ENV: moment})
    with server.client() as c, pytest.raises(Exception):  # noqa: B017 - the server dies mid-request
        action(c)
    assert server.proc is not None
    assert server.proc.wait(timeout=120) == -9, f"the server did not crash at {moment}"
    _restart(server)


def _qemu_pids_of(server: ServerProcess, shell_id: str) -> list[int]:
    """The QEMU processes that run for this shell (its run dir is in their command line)."""
    needle = f"{Settings(data_dir=server.data_dir).run_dir}/microvm/{shell_id}/".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"qemu-system") and needle in cmdline:
                pids.append(int(proc.name))
    return pids


def _qemus_of(server: ServerProcess, shell_id: str) -> int:
    return len(_qemu_pids_of(server, shell_id))


def _tap_wired(server: ServerProcess, shell_id: str) -> bool:
    """Whether the VM's tap in the shell's network namespace has its address (the guest's route)."""
    netns = Settings(data_dir=server.data_dir).run_dir / "netns" / shell_id
    shown = subprocess.run(
        ["nsenter", f"--net={netns}", "ip", "-4", "-o", "addr", "show", "dev", TAP],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return TAP_IP in shown.stdout


def _run(shell: Shell, script: str) -> str:
    out = shell.commands.run(script)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout)


def _write_both_ways(shell: Shell, tag: str) -> None:
    """One write the file API acknowledged, one a command made (no sync): both only in the page cache
    unless someone flushes them."""
    shell.files.write(f"/workspace/api-{tag}.txt", f"api {tag}")
    _run(shell, f"echo exec {tag} > /workspace/exec-{tag}.txt")


def _assert_both_written(shell: Shell, tag: str) -> None:
    assert shell.files.read(f"/workspace/api-{tag}.txt") == f"api {tag}".encode()
    assert _run(shell, f"cat /workspace/exec-{tag}.txt") == f"exec {tag}\n"


# item 9 --------------------------------------------------------------------------------------------
def test_stopping_a_paused_vm_keeps_every_write(srv: ServerProcess, make_vm: Callable[..., Shell]) -> None:
    explicit = make_vm(idle_timeout_s=0)
    idle = make_vm(idle_timeout_s=2)
    with srv.client() as c:
        _write_both_ways(c.get(explicit.id), "pause")
        _write_both_ways(c.get(idle.id), "idle")
        c.get(explicit.id).pause()
        deadline = time.monotonic() + 60
        while c.get(idle.id).info.state != "paused":
            assert time.monotonic() < deadline, "the idle monitor did not pause the shell"
            time.sleep(0.2)
        for shell_id, tag in ((explicit.id, "pause"), (idle.id, "idle")):
            shell = c.get(shell_id)
            began = time.monotonic()
            shell.stop()
            print(f"stop of a paused VM: {time.monotonic() - began:.2f} s")
            assert shell.info.state == "stopped" and _qemus_of(srv, shell_id) == 0
            shell.start()
            _assert_both_written(shell, tag)


def test_an_acknowledged_write_survives_its_vm_being_killed(
    srv: ServerProcess, make_vm: Callable[..., Shell]
) -> None:
    """The host may lose a VM's memory with no warning (QEMU killed, the host's OOM killer): what the
    file API acknowledged was on the disk already."""
    vm = make_vm(idle_timeout_s=0)
    vm.files.write("/workspace/acked.txt", "acknowledged")
    os.kill(_qemu_pids_of(srv, vm.id)[0], signal.SIGKILL)
    with srv.client() as c:
        shell = c.get(vm.id)
        shell.stop()
        shell.start()
        assert shell.files.read("/workspace/acked.txt") == b"acknowledged"


# item 11 and the pause ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "moment",
    [
        "microvm.restore.launched",  # QEMU started, the saved state not loaded yet
        "microvm.paused.restored",  # QEMU runs the guest, its record still says paused
    ],
)
def test_kill_9_during_a_transparent_resume_leaves_a_usable_shell(
    srv: ServerProcess, make_vm: Callable[..., Shell], moment: str
) -> None:
    shell = make_vm(idle_timeout_s=0)
    _write_both_ways(shell, "before")
    shell.pause()
    _crash_during(srv, moment, lambda c: c.get(shell.id).commands.run("echo resumed"))
    with srv.client() as c:
        again = c.get(shell.id)
        assert again.info.state in ("paused", "running"), again.info.state_reason
        assert _qemus_of(srv, shell.id) == (1 if again.info.state == "running" else 0)
        assert _run(again, "echo usable") == "usable\n"
        _assert_both_written(again, "before")
        assert _qemus_of(srv, shell.id) == 1
        assert _tap_wired(srv, shell.id)
        again.pause()  # and its transitions work again
        again.resume()
        assert _run(again, "echo still") == "still\n"


def test_kill_9_while_stopping_a_paused_vm_finishes_the_stop_and_keeps_its_writes(
    srv: ServerProcess, make_vm: Callable[..., Shell]
) -> None:
    """The stop had restored the VM to flush it (in a throwaway network namespace) when the server
    died: start-up must finish that stop, not adopt the half-stopped VM as running."""
    shell = make_vm(idle_timeout_s=0)
    _write_both_ways(shell, "before")
    shell.pause()
    _crash_during(srv, "microvm.paused.restored", lambda c: c.get(shell.id).stop())
    with srv.client() as c:
        again = c.get(shell.id)
        assert again.info.state == "stopped", again.info.state_reason
        assert _qemus_of(srv, shell.id) == 0
        again.start()
        _assert_both_written(again, "before")


@pytest.mark.parametrize(
    ("moment", "action"),
    [("microvm.pause.saved", "pause"), ("microvm.freeze.saved", "snapshot")],
)
def test_kill_9_once_a_save_halted_the_vm_leaves_it_running_and_no_half_image(
    srv: ServerProcess, make_vm: Callable[..., Shell], moment: str, action: str
) -> None:
    """The VM was halted and its state saved (for a pause, or into a snapshot's image), but nothing
    recorded the pause or the snapshot, when the server died."""
    shell = make_vm(idle_timeout_s=0)
    _write_both_ways(shell, "before")
    images = srv.data_dir / "microvm" / "images"
    before = set(images.iterdir())
    _crash_during(srv, moment, lambda c: getattr(c.get(shell.id), action)())
    with srv.client() as c:
        again = c.get(shell.id)
        assert again.info.state == "running"
        assert _run(again, "echo usable") == "usable\n"
        _assert_both_written(again, "before")
        assert _qemus_of(srv, shell.id) == 1
        assert c.snapshots.list(shell.id) == []
    assert set(images.iterdir()) == before


# item 16 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["container", "microvm"])
def test_kill_9_in_the_middle_of_a_restart_finishes_it_at_start_up(
    srv: ServerProcess, make_vm: Callable[..., Shell], runtime: str
) -> None:
    shell = make_vm(runtime=runtime, **({"idle_timeout_s": 0} if runtime == "microvm" else {}))
    _write_both_ways(shell, "before")
    _run(shell, "(sleep 900 &) ; true")  # a process from before the restart
    _crash_during(srv, "lifecycle.restart.stopped", lambda c: c.get(shell.id).restart())
    with srv.client() as c:
        again = c.get(shell.id)
        assert again.info.state == "running", again.info.state_reason
        assert _run(again, "pgrep -x sleep || echo restarted") == "restarted\n"
        _assert_both_written(again, "before")
        if runtime == "microvm":
            assert _qemus_of(srv, shell.id) == 1
        events = [e for e in c.audit(shell=shell.id) if e.action == "reconcile"]
        assert any("cut short" in e.message for e in events), events


# item 12 --------------------------------------------------------------------------------------------
def test_fork_prune_fork_five_times_back_to_back(srv: ServerProcess, make_vm: Callable[..., Shell]) -> None:
    parent = make_vm(idle_timeout_s=0)
    _run(parent, "echo parent > /workspace/who")
    with srv.client() as c:
        for round_ in range(5):
            children = c.get(parent.id).fork(2)
            assert [ch.info.state for ch in children] == ["running", "running"], round_
            assert _run(children[0], "cat /workspace/who") == "parent\n"
            for child in children:
                child.kill()  # deleted; its clean-up runs while the next fork is written


def test_a_fork_that_fails_leaves_no_child_creating_or_counted(
    srv: ServerProcess, make_vm: Callable[..., Shell]
) -> None:
    parent = make_vm(idle_timeout_s=0)
    _restart(srv, **{FAIL_ENV: "microvm.fork.frozen"})  # an unexpected host error mid-fork
    with srv.client() as c:
        before = {s.id for s in c.list()}
        with pytest.raises(Exception):  # noqa: B017 - a 500: the host failed
            c.get(parent.id).fork(2)
        assert {s.id for s in c.list()} == before  # all or nothing: no child, and none counted
    store = Store(f"sqlite:///{srv.data_dir / 'shells.db'}")
    try:
        creating = [s.id for s in store.list_shells(None) if s.state == "creating"]
    finally:
        store.close()
    assert creating == []
    _restart(srv)
    with srv.client() as c:
        (child,) = c.get(parent.id).fork(1)
        assert _run(child, "echo forked") == "forked\n"
        child.kill()
