"""Attacks on a microvm's host side from inside the guest, and its exposed ports, end to end.

One server and one VM for the whole module (TCG is slow): the guest's root writes forged frames into
the agent's virtio port, floods ``ttyS0``, and serves a page through the ingress.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.guest.protocol import (
    HEADER_SIZE,
    MAX_CHANNEL,
    MAX_PAYLOAD,
    FrameKind,
    encode_control,
    encode_frame,
)
from shells.runtime.microvm.backend import MicrovmBackend
from shells.runtime.microvm.console import CONSOLE_BYTES
from shells.sdk import Shell, Shells, ShellsError

from .harness import ServerProcess, running_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

PAGE = "hello-from-the-vm"


@pytest.fixture(scope="module")
def vm_server(data_root: Path) -> Iterator[ServerProcess]:
    with running_server(data_root / "attack-microvm", warm_pool=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def vm_client(vm_server: ServerProcess) -> Iterator[Shells]:
    with vm_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def vm(vm_client: Shells) -> Iterator[Shell]:
    shell = vm_client.create("python", runtime="microvm", network="localhost", idle_timeout_s=0)
    yield shell
    shell.kill()


def sh(shell: Shell, script: str, timeout_s: float = 60) -> str:
    out = shell.commands.run(script, timeout=timeout_s)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    return str(out.stdout)


def test_an_exposed_port_of_a_vm_serves_through_the_ingress(
    vm_server: ServerProcess, vm_client: Shells, vm: Shell
) -> None:
    sh(
        vm,
        f"mkdir -p /srv && echo {PAGE} > /srv/index.html && "
        "setsid nohup python3 -m http.server 8000 --directory /srv >/dev/null 2>&1 < /dev/null & "
        "for i in $(seq 100); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8000))' "
        "2>/dev/null && exit 0; sleep 0.1; done; exit 1",
    )
    port = vm.ports.expose(8000)
    assert port.token
    base = f"http://127.0.0.1:{vm_server.ingress_port}"
    with_token = {"Host": f"8000-{vm.id}.localhost", "X-Shells-Port-Token": port.token}
    with httpx.Client(base_url=base, timeout=30) as web:
        by_host = web.get("/", headers=with_token)
        assert by_host.status_code == 200, by_host.text
        assert PAGE in by_host.text
        by_path = web.get(f"/{vm.id}/8000/", headers={"X-Shells-Port-Token": port.token})
        assert by_path.status_code == 200 and PAGE in by_path.text
        assert web.get("/", headers={"Host": f"8000-{vm.id}.localhost"}).status_code == 401

        vm.pause()
        woken = web.get("/", headers=with_token)  # wake on request, the default of a class that pauses
        assert woken.status_code == 200 and PAGE in woken.text, woken.text
        assert vm_client.get(vm.id).info.state == "running"


def test_a_console_flood_is_capped_on_the_host_and_logs_show_its_end(
    vm_server: ServerProcess, vm: Shell
) -> None:
    console = vm_server.data_dir / "microvm" / "shells" / vm.id / "console.log"
    line = "flood " * 12
    written = int(sh(vm, f"yes '{line}' | timeout 15 tee /dev/ttyS0 | wc -c; echo THE-END > /dev/ttyS0"))
    assert written > 3 * CONSOLE_BYTES, f"the flood wrote only {written} bytes: it proves nothing"
    assert console.stat().st_size <= CONSOLE_BYTES
    logs = vm.logs()
    assert "THE-END" in logs[-200:]
    assert line.strip() in logs
    assert console.stat().st_size <= CONSOLE_BYTES
    sizes = sorted(p.stat().st_size for p in console.parent.iterdir() if p.is_file())
    assert [p.name for p in console.parent.iterdir() if p.name.endswith(".partial")] == []
    print(f"flood of {written} bytes; files of the shell's dir: {sizes}")


GRAB_PORT = r"""
import ctypes, os, random, select, sys, time

libc = ctypes.CDLL(None, use_errno=True)


def agent_port():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/vport"):
                    return int(pid), int(fd)
        except OSError:
            pass
    raise SystemExit("no process holds a virtio port")


pid, target = agent_port()
port = libc.syscall(438, os.pidfd_open(pid), target, 0)  # pidfd_getfd: the agent's own port
if port < 0:
    raise SystemExit(f"pidfd_getfd failed: errno {ctypes.get_errno()}")
"""
"""Root in the guest takes a copy of the agent's virtio port fd (``pid``, ``port``)."""

ATTACK = (
    GRAB_PORT
    + r"""
written = 0


def put(data):
    global written
    view = memoryview(data)
    while view:
        try:
            n = os.write(port, view[: random.randint(1, 32768)])
        except BlockingIOError:
            select.select([], [port], [], 1)
            continue
        view = view[n:]
        written += n


time.sleep(1)
forged = open("/workspace/forged.bin", "rb").read()
for _ in range(2):
    put(forged)  # every guessed channel's output and end
    put(os.urandom(1 << 20))  # garbage
    put(bytes.fromhex(sys.argv[1]))  # a header promising a 1 MiB frame, then nothing
    time.sleep(0.5)  # the agent's frames follow it
    put(bytes.fromhex(sys.argv[1])[:5])  # half a header
    time.sleep(0.5)
print(f"wrote {written} bytes through the agent's port", flush=True)
open("/workspace/attack.done", "w").write(str(written))
"""
)


def _forgeries() -> tuple[bytes, str]:
    """Frames in the host's own format for guessed channels (sequential ids, then random ones), and a
    header that promises a 1 MiB frame on a random channel."""
    lie = {"op": "exit", "exit_code": 0, "signal": None, "timed_out": False, "truncated": False}
    ids = [*range(1, 3001), *(random.randrange(1, MAX_CHANNEL) for _ in range(2000))]
    frames = b"".join(
        encode_frame(guess, FrameKind.STDOUT, b"FORGED\n")
        + encode_control(guess, {**lie, "duration_ms": 1.0})
        for guess in ids
    )
    promise = encode_frame(random.randrange(1, MAX_CHANNEL), FrameKind.STDOUT, b"x" * MAX_PAYLOAD)[
        :HEADER_SIZE
    ]
    return frames, promise.hex()


def test_frames_forged_from_inside_the_guest_reach_no_call_and_the_vm_stays_usable(vm: Shell) -> None:
    forged, promise = _forgeries()
    vm.files.write("/workspace/forged.bin", forged)
    vm.files.write("/workspace/attack.py", ATTACK)
    sh(vm, f"rm -f /workspace/attack.done; setsid nohup python3 /workspace/attack.py {promise} "
           "> /workspace/attack.log 2>&1 < /dev/null &")  # fmt: skip
    started = time.monotonic()
    legit = vm.commands.run("for i in $(seq 1 40); do echo legit-$i; sleep 0.2; done; exit 7", timeout=120)
    print(f"the legitimate command took {time.monotonic() - started:.1f} s")
    assert legit.stdout == "".join(f"legit-{i}\n" for i in range(1, 41))
    assert legit.exit_code == 7 and "FORGED" not in legit.stdout
    deadline = time.monotonic() + 120
    while (done := vm.commands.run("cat /workspace/attack.done 2>/dev/null || true").stdout) == "":
        assert time.monotonic() < deadline, vm.files.read_text("/workspace/attack.log")
        time.sleep(1)
    assert int(done) > 2 * len(forged) + (2 << 20), "the attack did not write everything"
    print(vm.files.read_text("/workspace/attack.log"))
    # The link is whole: commands, files and their outputs are true.
    for n in range(3):
        out = vm.commands.run(f"echo still-{n}; exit {n}")
        assert (out.stdout, out.exit_code) == (f"still-{n}\n", n)
    vm.files.write("/workspace/after.txt", b"x" * 200_000)
    assert vm.files.read("/workspace/after.txt") == b"x" * 200_000


def test_after_a_server_crash_the_link_starts_over_and_the_console_ring_is_kept(
    vm_server: ServerProcess, vm: Shell
) -> None:
    """QEMU outlives the server: its console ring still holds what the guest wrote, and the new
    server's link reaches the agent with a resync (behind the mark)."""
    sh(vm, "echo BEFORE-THE-CRASH > /dev/ttyS0")
    vm_server.kill9()
    vm_server.start()
    with vm_server.client() as client:
        again = client.get(vm.id)
        assert sh(again, "echo alive") == "alive\n"
        assert "BEFORE-THE-CRASH" in again.logs()


STEAL = (
    GRAB_PORT
    + r"""
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH, WALL = 0x4206, 0x4207, 17, 0x40000000
time.sleep(1)
if libc.ptrace(PTRACE_SEIZE, pid, None, None) or libc.ptrace(PTRACE_INTERRUPT, pid, None, None):
    raise SystemExit(f"ptrace failed: errno {ctypes.get_errno()}")
os.waitpid(pid, WALL)  # the agent is stopped: what the host sends next waits in the port
select.select([port], [], [], 120)
stolen = os.read(port, 5)  # the first bytes of the host's next frame
libc.ptrace(PTRACE_DETACH, pid, None, None)
open("/workspace/stolen", "w").write(stolen.hex())
"""
)


def test_an_agent_robbed_of_the_hosts_bytes_is_brought_back_in_step(vm: Shell) -> None:
    """Root in the guest stops the agent, reads the start of the host's next frame from the port,
    and lets the agent go on out of step. The host notices (a call fails, a ping is not answered)
    and restarts the stream; the VM is usable again, every call before that ended at its deadline.
    (The agent now hunts for the resync mark after a framing fault, so without the host's check this
    link stays wedged: every call fails for good, as it did when the check was taken out.)"""
    vm.files.write("/workspace/steal.py", STEAL)
    sh(vm, "rm -f /workspace/stolen; "
           "setsid nohup python3 /workspace/steal.py > /workspace/steal.log 2>&1 < /dev/null &")  # fmt: skip
    started = time.monotonic()
    failures: list[tuple[float, str]] = []
    while True:  # calls answer until the agent is robbed; then they fail until the link is back
        try:
            out = vm.commands.run("echo back; exit 3", timeout=5)
        except ShellsError as exc:  # each failure is an answer, not a hang
            failures.append((round(time.monotonic() - started, 1), exc.code))
        else:
            assert (out.stdout, out.exit_code) == ("back\n", 3)
            if failures:
                break
            assert time.monotonic() - started < 60, vm.files.read_text("/workspace/steal.log")
            time.sleep(0.5)
        assert time.monotonic() - started < 300, f"the link never came back: {failures}"
    print(f"back after {time.monotonic() - started:.1f} s; failed calls: {failures}")
    stolen = vm.commands.run("cat /workspace/stolen; cat /workspace/steal.log").stdout
    assert len(stolen.splitlines()[0]) == 10, stolen  # 5 bytes were taken from the host's stream
    assert failures, "nothing was stolen: the test proves nothing"
    for n in range(3):
        again = vm.commands.run(f"echo again-{n}; exit {n}")
        assert (again.stdout, again.exit_code) == (f"again-{n}\n", n)
