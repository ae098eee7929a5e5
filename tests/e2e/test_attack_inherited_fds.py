"""Attacks on what a shell may have inherited from the server: every descriptor the server holds (its
netfilter and route netlink sockets, made by root in the host's network namespace, the record, the
API's listening sockets, its event loop) must stay in the server. Root inside a shell lists its own
fds and every fd of every process it can see (PID 1's tree) and tries to use what it finds (a netlink
request to nftables and to the routing table); the host then looks at every process of the instance
— the shells' processes, QEMU, the wasm workers, anything the server started — for a socket or
kernel object of the server's."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shells.sdk import Shell
from shells.settings import Settings

from .harness import ServerProcess

O_CLOEXEC = 0o2000000

# Every fd root inside can see, and whether any inherited socket answers a netlink request: NFT's
# "get generation" (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN) and a dump of the links (RTM_GETLINK).
PROBE = r"""
import json, os, socket, struct

def request(kind, flags):
    return struct.pack("=LHHLL", 20, kind, flags, 1, 0) + b"\0\0\0\0"

out = {"own": {}, "others": {}, "opened": [], "answered": []}
for fd in os.listdir("/proc/self/fd"):
    try:
        out["own"][fd] = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the listing's own fd, closed by now
        continue
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    out["others"][pid] = fds
    for fd in fds:
        try:
            os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY))
            out["opened"].append(f"{pid}/{fd}")
        except OSError:
            pass
for fd in [int(f) for f in out["own"] if int(f) > 2]:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        continue
    with sock:
        if sock.family != socket.AF_NETLINK:
            continue
        sock.settimeout(1)
        for kind, flags in (((10 << 8) | 16, 1), (18, 0x301)):
            try:
                sock.send(request(kind, flags))
                out["answered"].append(f"{fd}: {len(sock.recv(65536))} bytes")
            except OSError:
                pass
print(json.dumps(out))
"""


def _fds(pid: int) -> dict[int, str]:
    """What each fd of ``pid`` refers to (a process or fd gone meanwhile is skipped)."""
    found: dict[int, str] = {}
    try:
        names = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return found
    for fd in names:
        try:
            found[int(fd.name)] = str(fd.readlink())
        except OSError:
            continue
    return found


def _sockets(pid: int) -> set[str]:
    """The sockets ``pid`` holds (``socket:[inode]``): a copy of one of the server's in another
    process is a leak (files and pipes may be shared on purpose; anonymous inodes all read alike)."""
    return {t for t in _fds(pid).values() if t.startswith("socket:")}


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _instance_processes(server: ServerProcess) -> dict[int, str]:
    """Every process the instance runs besides the server itself, with its command line: the server's
    descendants (crun's, the wasm workers, rclone...), the processes in its shells' cgroups and the
    daemons that name its run directory (QEMU and virtiofsd detach from the server)."""
    assert server.proc is not None
    instance = Settings(data_dir=server.data_dir).instance_id
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server.proc.pid:
            continue
        pid = int(entry.name)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        ancestor = _parent(pid)
        while ancestor > 1 and ancestor != server.proc.pid:
            ancestor = _parent(ancestor)
        if ancestor == server.proc.pid or f"/shells-{instance}/" in cgroups or f"/{instance}/" in cmdline:
            found[pid] = cmdline
    return found


def _shared_sockets(server: ServerProcess) -> set[tuple[int, str, str]]:
    """(pid, command line, socket) for each socket of the server's another process of the instance holds."""
    assert server.proc is not None
    held = _sockets(server.proc.pid)
    return {
        (pid, cmdline[:120], sock)
        for pid, cmdline in _instance_processes(server).items()
        for sock in _sockets(pid) & held
    }


def _leaks(server: ServerProcess) -> list[tuple[int, str, str]]:
    """The sockets of the server's still held by another process of the instance half a second
    later: a shell starting meanwhile (the warm pool refills) shares its agent's listening socket with
    the server until crun returns, which is no leak."""
    first = _shared_sockets(server)
    time.sleep(0.5)
    return sorted(first & _shared_sockets(server))


def _probe(shell: Shell) -> dict[str, object]:
    shell.files.write("/tmp/fds.py", PROBE)
    result = shell.commands.run(["python3", "/tmp/fds.py"], timeout=60)
    assert result.exit_code == 0, result
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_no_descriptor_of_the_server_is_inheritable(server: ServerProcess) -> None:
    """Whatever a child is started with, an fd without close-on-exec would follow it through exec
    (uvloop starts its children without closing the others: the wasm workers held libnftables'
    netlink sockets)."""
    assert server.proc is not None
    first = _inheritable(server.proc.pid)
    time.sleep(0.5)
    lasting = first.items() & _inheritable(server.proc.pid).items()
    assert not lasting, f"the server's fds that a child would inherit: {sorted(lasting)}"


def _inheritable(pid: int) -> dict[int, str]:
    """The fds of ``pid`` above stdio without close-on-exec. One seen only once is the end of a pipe
    uvloop hands to a child it is starting at that moment (the warm pool refilling), not a leak."""
    inheritable = {}
    for fd, target in _fds(pid).items():
        try:
            flags = int(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split()[3], 8)
        except (OSError, IndexError, ValueError):
            continue
        if fd > 2 and not flags & O_CLOEXEC:
            inheritable[fd] = target
    return inheritable


def test_root_in_a_shell_finds_nothing_of_the_servers_to_use(
    server: ServerProcess, make_shell: Callable[..., Shell], runtime: str
) -> None:
    """From inside (a container: a microvm's guest is the tenant's own kernel, whose fds are all the
    tenant's anyway), then from the host: the shell's processes, and for a microvm its QEMU."""
    shell = make_shell(runtime=runtime)
    if runtime == "container":
        found = _probe(shell)
        own = found["own"]
        assert isinstance(own, dict)
        assert sorted(own) == ["0", "1", "2"], f"a command inside holds more than its stdio: {own}"
        assert found["opened"] == [], f"another process's fd opened from inside: {found['opened']}"
        assert found["answered"] == [], f"an inherited netlink socket answered: {found['answered']}"
    leaks = _leaks(server)
    assert not leaks, f"processes of the instance hold the server's sockets: {leaks}"


def test_the_wasm_workers_hold_nothing_of_the_servers(
    server: ServerProcess, make_shell: Callable[..., Shell]
) -> None:
    shell = make_shell(runtime="wasm")
    assert shell.run_code("print(6 * 7)").stdout == "42\n"
    workers = [c for c in _instance_processes(server).values() if "shells.runtime.wasm.worker" in c]
    assert workers, "no wasm worker found: the test would see nothing"
    leaks = _leaks(server)
    assert not leaks, f"processes of the instance hold the server's sockets: {leaks}"


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the host's view of another process's fds")
