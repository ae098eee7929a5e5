"""Attacks by root inside a container shell on what connects it to the host: the agent's socket, the
agent process itself, sockets that leave the network namespace, and what the mounts tell of the host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shells.sdk import Shell
from shells.settings import Settings

from .harness import ServerProcess
from .test_terminal import attached, screen_until

# Binds its own listening socket where the agent's used to be and renames it over the agent's name
# (the attack that took over the host's calls), then logs every connection it receives.
FORGER = r"""
import os, socket
run = "/.shells/run"
try:
    os.makedirs(run, exist_ok=True)
except OSError:  # /.shells is the read-only agent runtime: the forger listens where it can
    run = "/tmp/.shells-run"
    os.makedirs(run, exist_ok=True)
temp = f"{run}/.forger.sock"
for stale in (temp,):
    try:
        os.unlink(stale)
    except FileNotFoundError:
        pass
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(temp)
listener.listen(64)
os.rename(temp, f"{run}/agent.sock")
with open("/tmp/forger.ready", "w") as f:
    f.write("ready")
while True:
    connection, _ = listener.accept()
    with open("/tmp/forger.log", "a") as f:
        f.write("a host connection\n")
    connection.close()
"""

# Everything that would let code inside touch the agent (PID 1), and what must keep working.
AGENT_PROBE = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def sc(*args):
    rc = libc.syscall(*[ctypes.c_long(a) for a in args])
    return "OK" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "OK"
    except OSError as exc:
        out[name] = errno.errorcode[exc.errno]

pidfd = libc.syscall(ctypes.c_long(434), ctypes.c_long(1), ctypes.c_long(0))
out["pidfd_open"] = "OK" if pidfd >= 0 else errno.errorcode[ctypes.get_errno()]
out["pidfd_getfd"] = sc(438, pidfd, 0, 0)
attempt("mem_rw", lambda: os.close(os.open("/proc/1/mem", os.O_RDWR)))
attempt("mem_read", lambda: os.close(os.open("/proc/1/mem", os.O_RDONLY)))
attempt("environ", lambda: open("/proc/1/environ", "rb").read())
attempt("fd_link", lambda: os.readlink("/proc/1/fd/0"))
attempt("fd_open", lambda: os.close(os.open("/proc/1/fd/1", os.O_WRONLY)))
attempt("fd_list", lambda: os.listdir("/proc/1/fd"))
attempt("maps", lambda: open("/proc/1/maps").read())
attempt("root", lambda: os.listdir("/proc/1/root"))
attempt("cwd", lambda: os.listdir("/proc/1/cwd"))
buf = ctypes.create_string_buffer(8)
iov = (ctypes.c_uint64 * 2)(ctypes.addressof(buf), 8)
out["process_vm_readv"] = sc(310, 1, ctypes.addressof(iov), 1, ctypes.addressof(iov), 1, 0)
out["self_environ"] = b"PATH=" in open("/proc/self/environ", "rb").read()
out["self_fds"] = []
for fd in os.listdir("/proc/self/fd"):
    try:
        out["self_fds"].append(os.readlink(f"/proc/self/fd/{fd}"))
    except FileNotFoundError:  # the directory listing's own fd, closed by now
        pass
status = dict(l.split(":\t", 1) for l in open("/proc/self/status") if ":\t" in l)
out["cap_sys_ptrace"] = bool(int(status["CapBnd"], 16) & (1 << 19))
print(json.dumps(out))
"""

SOCKET_PROBE = r"""
import ctypes, errno, json, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def make(family, kind):
    try:
        socket.socket(family, kind).close()
        return "OK"
    except OSError as exc:
        return errno.errorcode[exc.errno]

def raw(family):  # the kernel reads the family as 32 bits: high bits must not slip past the filter
    fd = libc.syscall(ctypes.c_long(41), ctypes.c_long(family), ctypes.c_long(1), ctypes.c_long(0))
    return "OK" if fd >= 0 else errno.errorcode[ctypes.get_errno()]

print(json.dumps({
    "vsock": make(40, socket.SOCK_STREAM),
    "vsock_dgram": make(40, socket.SOCK_DGRAM),
    "vsock_high_bits": raw(0x100000028),
    "alg": make(38, socket.SOCK_SEQPACKET),
    "unix": make(socket.AF_UNIX, socket.SOCK_STREAM),
    "inet": make(socket.AF_INET, socket.SOCK_STREAM),
    "inet6": make(socket.AF_INET6, socket.SOCK_DGRAM),
    "netlink": make(socket.AF_NETLINK, socket.SOCK_RAW),
}))
"""


def _json(shell: Shell, path: str, program: str) -> dict[str, object]:
    shell.files.write(path, program)
    result = shell.commands.run(["python3", path], timeout=60)
    assert result.exit_code == 0, result
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_a_socket_put_where_the_agent_listened_never_gets_the_hosts_calls(
    api: httpx.Client, shell: Shell
) -> None:
    assert shell.commands.run("test -e /.shells/run/agent.sock").exit_code == 1, "the host's socket shows"
    shell.files.write("/tmp/forger.py", FORGER)
    started = shell.commands.run(
        "setsid -f python3 /tmp/forger.py </dev/null >/tmp/forger.out 2>&1;"
        " for i in $(seq 100); do test -e /tmp/forger.ready && break; sleep 0.05; done;"
        " cat /tmp/forger.ready /tmp/forger.out",
        timeout=30,
    )
    assert started.stdout.startswith("ready"), started
    # Every kind of call still reaches the real agent: true output, true exit codes, real files.
    result = shell.commands.run("echo $((6 * 7)); exit 3")
    assert (result.stdout, result.exit_code) == ("42\n", 3)
    shell.files.write("/workspace/upload.txt", "for the real agent\n")
    assert shell.commands.run("cat /workspace/upload.txt").stdout == "for the real agent\n"
    assert shell.files.read("/workspace/upload.txt") == b"for the real agent\n"
    assert "upload.txt" in [entry.name for entry in shell.files.list("/workspace")]
    cred = api.post(f"/v1/shells/{shell.id}/term", json={})
    assert cred.status_code == 201, cred.text
    with attached(cred.json()) as ws:
        ws.send(b"echo term-$((40 + 2))\n")
        assert b"term-42\r\n" in screen_until(ws, rb"term-42\r\n")
    log = shell.commands.run("cat /tmp/forger.log 2>/dev/null; pgrep -f forger.py")
    assert "a host connection" not in log.stdout, "a host call reached the forger"
    assert log.stdout.strip(), "the forger must still be running, else the test proves nothing"


def test_code_inside_cannot_touch_the_agent_process(shell: Shell) -> None:
    out = _json(shell, "/tmp/agent_probe.py", AGENT_PROBE)
    assert out["pidfd_open"] == "OK", out  # harmless, and used by ordinary programs
    assert out["pidfd_getfd"] == "EPERM", out
    for probe in ("mem_rw", "mem_read", "environ", "fd_link", "fd_open", "maps", "root", "cwd"):
        assert out[probe] == "EACCES", (probe, out)
    assert out["process_vm_readv"] == "EPERM", out
    assert out["cap_sys_ptrace"] is False
    # The shell's own processes are as usual; none holds a socket of the agent's.
    assert out["self_environ"] is True
    fds = out["self_fds"]
    assert isinstance(fds, list) and not [fd for fd in fds if "socket" in str(fd)], fds
    ps = shell.commands.run("ps -eo pid,comm")
    assert ps.exit_code == 0 and "1 shells-agent" in ps.stdout, ps
    assert shell.commands.run("ls /proc/self/fd >/dev/null && cat /proc/self/maps | head -1").exit_code == 0


@pytest.mark.parametrize("mode", ["sealed", "localhost", "internet"])
def test_vsock_and_other_unneeded_socket_families_are_refused(
    make_shell: Callable[..., Shell], mode: str
) -> None:
    shell = make_shell(network=mode)
    out = _json(shell, "/tmp/socket_probe.py", SOCKET_PROBE)
    for family in ("vsock", "vsock_dgram", "vsock_high_bits", "alg"):
        assert out[family] == "EAFNOSUPPORT", (mode, family, out)
    for family in ("unix", "inet", "inet6", "netlink"):
        assert out[family] == "OK", (mode, family, out)


def _mounts(text: str) -> dict[str, tuple[set[str], list[str]]]:
    """Mount point -> (its per-mount options, the whole line split) from a mountinfo text."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split()
        mounts[fields[4]] = (set(fields[5].split(",")), fields)
    return mounts


def test_the_mounts_have_their_flags_and_tell_nothing_of_the_host(
    server: ServerProcess, shell: Shell
) -> None:
    text = shell.commands.run("cat /proc/self/mountinfo").stdout
    mounts = _mounts(text)
    assert {"nosuid", "nodev"} <= mounts["/"][0], mounts["/"]
    assert {"nosuid", "nodev"} <= mounts["/workspace"][0], mounts["/workspace"]
    assert {"ro", "nosuid", "nodev"} <= mounts["/.shells"][0], mounts["/.shells"]  # the agent runtime
    assert not [m for m in mounts if m.startswith("/.shells/run")]
    # Nothing of the host: its paths, its root device, its RAM (a default-sized tmpfs or devtmpfs).
    host_root = _mounts(Path("/proc/self/mountinfo").read_text())["/"][1]
    root_device, root_source = host_root[2], host_root[host_root.index("-") + 2]
    half_ram_kib = int(Path("/proc/meminfo").read_text().split()[1]) // 2
    host_paths = (str(server.data_dir.resolve()), str(Settings(data_dir=server.data_dir).run_dir), "/run/")
    for point, (_, fields) in mounts.items():
        separator = fields.index("-")
        fstype, source, super_options = fields[separator + 1 : separator + 4]
        assert not fields[3].startswith(host_paths), (point, "shows a host path", fields)
        assert fields[2] != root_device and source != root_source, (point, "on the host's root fs", fields)
        assert fstype != "devtmpfs", (point, "the host's devtmpfs", fields)
        assert f"size={half_ram_kib}k" not in super_options, (point, "a size of half the host's RAM", fields)
