"""The microvm class through the real server and real QEMU: pause to zero and resume in place under
repetition, forks that are independent, idle auto-pause, and the walls a VM puts up.

Its own server: 20 forks and their parent need a shell quota above the default, and no warm pool
(which would keep container shells busy on the 2 shared cores)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import AgentError
from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import CommandExit, CommandOutput, Shell, Shells
from tests.support.fake_internet import FakeInternet

from .harness import ServerProcess, running_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

COUNTER = "/workspace/counter"
SERVE = (
    "import os, socket\n"
    "open('/workspace/serve.pid', 'w').write(str(os.getpid()))\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', 7000)); s.listen(8)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.sendall(b'pong'); c.close()\n"
)
PROBE = (
    "import socket; s = socket.create_connection(('127.0.0.1', 7000), timeout=5); print(s.recv(8).decode())"
)


@pytest.fixture(scope="module")
def vm_server(data_root: Path) -> Iterator[ServerProcess]:
    env = {"SHELLS_QUOTA_MAX_SHELLS": "40", "SHELLS_QUOTA_MAX_VCPUS": "40"}
    with running_server(data_root / "microvm", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def vm_client(vm_server: ServerProcess) -> Iterator[Shells]:
    with vm_server.client() as c:
        yield c


@pytest.fixture
def make_vm(vm_client: Shells) -> Iterator[Callable[..., Shell]]:
    created: list[Shell] = []

    def make(**kwargs: Any) -> Shell:
        shell = vm_client.create("python", runtime="microvm", **kwargs)
        created.append(shell)
        return shell

    yield make
    for shell in created:
        shell.kill()


def sh(shell: Shell, script: str) -> str:
    out = shell.commands.run(script)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout)


def test_info_and_every_shell_name_the_acceleration(vm_client: Shells, make_vm: Callable[..., Shell]) -> None:
    details = vm_client.info()["runtimes"]["microvm"]["details"]
    assert details["accel"] in ("kvm", "tcg")
    shell = make_vm()
    assert shell.info.runtime_details["accel"] == details["accel"]
    assert sh(shell, "uname -r").strip() == details["guest_kernel"] != os.uname().release


def test_200_pause_resume_cycles_keep_files_processes_and_listeners(make_vm: Callable[..., Shell]) -> None:
    shell = make_vm(idle_timeout_s=0)
    shell.files.write("/workspace/serve.py", SERVE)
    sh(shell, f"echo 0 > {COUNTER}; setsid python3 /workspace/serve.py >/dev/null 2>&1 < /dev/null &")
    sh(shell, "sleep 1")
    pid = sh(shell, "cat /workspace/serve.pid").strip()
    failures = []
    for cycle in range(1, 201):
        shell.pause()
        assert shell.info.state == "paused"
        shell.resume()
        out = shell.commands.run(
            f"n=$(cat {COUNTER}); echo $((n+1)) > {COUNTER}; cat {COUNTER}; "
            f"kill -0 {pid} && echo alive; "
            f'python3 -c "{PROBE}"'
        )
        expected = f"{cycle}\nalive\npong\n"
        if out.exit_code != 0 or out.stdout != expected:
            failures.append((cycle, out.stdout, out.stderr))
    assert failures == []


def test_a_command_streaming_while_paused_continues_after_resume(make_vm: Callable[..., Shell]) -> None:
    shell = make_vm(idle_timeout_s=0)
    with shell.commands.stream("for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.5; done") as stream:
        events = iter(stream)
        first = next(e for e in events if isinstance(e, CommandOutput))
        assert first.data.startswith("tick1")
        shell.pause()  # while the command runs and its stream is open
        time.sleep(1.0)
        shell.resume()
        rest = list(events)
    text = first.data + "".join(e.data for e in rest if isinstance(e, CommandOutput))
    assert text == "".join(f"tick{i}\n" for i in range(1, 7))
    assert isinstance(rest[-1], CommandExit) and rest[-1].exit_code == 0


def test_20_forks_are_independent_with_their_own_randomness_and_the_right_time(
    make_vm: Callable[..., Shell], vm_client: Shells
) -> None:
    parent = make_vm(idle_timeout_s=0)
    sh(parent, 'echo parent > /workspace/who; python3 -c \'import os; open("/tmp/x","w").write("mem")\'')
    children = parent.fork(10) + parent.fork(10)
    try:
        assert len({c.id for c in children}) == 20
        randoms, whos = set(), set()
        for i, child in enumerate(children):
            assert child.info.state == "running" and child.info.runtime == "microvm"
            script = (
                f"cat /workspace/who /tmp/x; echo; echo child{i} > /workspace/who; "
                "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s.%N"
            )
            out = sh(child, script)
            who, mem, rnd, when = out.split("\n")[:4]
            assert (who, mem) == ("parent", "mem")
            assert abs(float(when) - time.time()) < 5, "the fork's clock was not re-synced"
            randoms.add(rnd)
        for child in children:
            whos.add(sh(child, "cat /workspace/who").strip())
        assert len(randoms) == 20, "two forks produced the same /dev/urandom bytes"
        assert whos == {f"child{i}" for i in range(20)}
        assert sh(parent, "cat /workspace/who").strip() == "parent"
    finally:
        for child in children:
            child.kill()


def test_a_fork_keeps_the_commands_its_parent_was_running(make_vm: Callable[..., Shell]) -> None:
    """The command's process is part of the machine: it runs on in the child, unheard (its output
    has no reader there), while the parent's caller keeps receiving the parent's output."""
    parent = make_vm(idle_timeout_s=0)
    loop = "while :; do date +%s%N > /tmp/tick; echo tick; sleep 0.2; done"
    with parent.commands.stream(["sh", "-c", loop], timeout=120) as stream:
        events = iter(stream)
        next(e for e in events if isinstance(e, CommandOutput))
        (child,) = parent.fork(1)
        try:
            first = sh(child, "cat /tmp/tick")
            time.sleep(1.0)
            assert sh(child, "cat /tmp/tick") != first, "the loop did not survive the fork"
            assert "sh -c while" in sh(child, "ps -eo args")
            seen_after = next(e for e in events if isinstance(e, CommandOutput))
            assert seen_after.data.startswith("tick")  # the parent's stream goes on
        finally:
            child.kill()


def test_snapshot_holds_memory_and_disk_and_new_shells_start_from_it(
    make_vm: Callable[..., Shell],
) -> None:
    shell = make_vm(idle_timeout_s=0)
    sh(shell, "echo before > /workspace/state; (sleep 600 &) ; true")
    snap = shell.snapshot()
    sh(shell, "echo after > /workspace/state")
    restored = make_vm(snapshot=snap.id)
    assert sh(restored, "cat /workspace/state; pgrep -x sleep >/dev/null && echo sleeping") == (
        "before\nsleeping\n"
    )


def test_a_snapshot_of_a_fork_outlives_the_fork_and_its_parent(make_vm: Callable[..., Shell]) -> None:
    """A fork child's disks read its fork point: so do a snapshot's copies of them, after every
    shell that used the fork point is gone (it was collected with them, and the snapshot broke)."""
    parent = make_vm(idle_timeout_s=0)
    sh(parent, "echo from-parent > /workspace/state")
    (child,) = parent.fork(1)
    sh(child, "echo from-child >> /workspace/state")
    snap = child.snapshot()
    child.kill()
    parent.kill()
    restored = make_vm(snapshot=snap.id)
    assert sh(restored, "cat /workspace/state") == "from-parent\nfrom-child\n"


def test_a_stopped_shell_snapshots_its_disks_and_shells_from_it_boot(make_vm: Callable[..., Shell]) -> None:
    shell = make_vm()
    sh(shell, "echo kept > /workspace/state; echo sys > /etc/marker")
    shell.stop()
    restored = make_vm(snapshot=shell.snapshot().id)
    assert sh(restored, "cat /workspace/state /etc/marker") == "kept\nsys\n"


def test_an_idle_shell_pauses_itself_and_an_exec_resumes_it(make_vm: Callable[..., Shell]) -> None:
    shell = make_vm(idle_timeout_s=2)
    sh(shell, f"echo 41 > {COUNTER}")
    deadline = time.monotonic() + 30
    while shell.refresh().state != "paused" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shell.info.state == "paused"
    assert "idle" in shell.info.state_reason
    assert sh(shell, f"echo $(( $(cat {COUNTER}) + 1 ))") == "42\n"
    assert shell.refresh().state == "running"


# the walls -----------------------------------------------------------------------------------------


def fetch(shell: Shell, host: str, port: int) -> str:
    """What a TCP connection from inside the guest gets: the first line, or the error's name."""
    script = (
        "import socket, sys\n"
        "try: print(socket.create_connection(tuple([sys.argv[1], int(sys.argv[2])]), 3).recv(200).decode())\n"
        "except OSError as e: print(type(e).__name__, e.errno)"
    )
    return str(shell.commands.run(["python3", "-c", script, host, str(port)]).stdout).strip()


def test_a_vm_gets_its_shells_network_policy_live(
    make_vm: Callable[..., Shell], internet: FakeInternet
) -> None:
    sealed = make_vm()
    for target in (internet.metadata, internet.a, "10.0.2.2"):
        # no route out of its namespace: ENETUNREACH, or a timeout once the ICMP errors are rate-limited
        assert fetch(sealed, target, 80) in ("OSError 101", "TimeoutError None"), target
        assert not internet.arrivals(target, 80)
    online = make_vm(network="internet")
    assert fetch(online, internet.a, 80).startswith(f"{internet.a}:80 from")
    assert fetch(online, internet.metadata, 80).startswith("ConnectionRefusedError")  # the host's wall
    assert not internet.arrivals(internet.metadata, 80)
    online.set_network("sealed")  # live, the guest untouched
    assert fetch(online, internet.a, 80) == "OSError 101"
    online.set_network("internet")
    online.pause()
    child = online.fork(1)[0]
    try:
        for shell in (online, child):  # after a restore, and in a fork with its own namespace
            assert fetch(shell, internet.a, 80).startswith(f"{internet.a}:80 from")
    finally:
        child.kill()


def test_the_host_is_invisible_from_inside(make_vm: Callable[..., Shell]) -> None:
    shell = make_vm()
    inside = sh(
        shell, "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; cat /proc/cmdline"
    )
    assert "guest.agent" in inside and "--serial" in inside
    assert int(inside.split("\n")[1]) < 100  # the guest's own few processes, not the host's hundreds
    assert str(os.getpid()) not in sh(shell, "ls /proc")
    assert "shells.probe" not in inside and "tsc_early_khz" in inside  # the guest kernel's cmdline
    mounts = sh(shell, "cat /proc/mounts")
    assert "/var/tmp" not in mounts and "btrfs" not in mounts


def test_fork_and_memory_bombs_stay_inside_the_vm(make_vm: Callable[..., Shell]) -> None:
    """The bombs may well take their own VM down (a guest near OOM thrashes; a fork bomb fills its one
    vCPU): what must hold is that the host and the other shells do not notice, and the host can
    still end the VM."""
    bystander = make_vm()
    bombs = {
        "memory": ["python3", "-c", "x = []\nwhile True: x.append(bytearray(16 << 20))"],
        "fork": ["bash", "-c", "bomb() { bomb | bomb & }; bomb; sleep 3"],
    }
    for kind, argv in bombs.items():
        victim = make_vm()
        with contextlib.suppress(AgentError):  # the guest itself may stop answering: its problem
            victim.commands.run(argv, timeout=8)
        assert sh(bystander, "echo fine") == "fine\n", kind
        assert victim.kill() is True, kind
