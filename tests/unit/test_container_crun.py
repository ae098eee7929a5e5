"""How crun is spawned: the agent's listening socket must arrive as fd 3 and nothing else may leak."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from shells.runtime.container.crun import STDIN_TO_FD3, _spawn_and_wait

PROBE = (
    'for fd in 0 1 2 3; do printf "%s " "$fd"; readlink /proc/self/fd/$fd; done; '
    "grep SigIgn /proc/self/status; "
    'for fd in /proc/self/fd/*; do readlink $fd; done | grep -cxF "$(readlink /proc/self/fd/3)"'
)


def _as_run_detached(*argv: str) -> list[str]:
    """``argv`` behind the move ``run_detached``'s shell makes before it execs crun."""
    return ["sh", "-c", f'exec "$@" {STDIN_TO_FD3}', "sh", *argv]


def test_the_passed_fd_becomes_fd_3_with_stdin_null_and_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    a, b = socket.socketpair()
    high = os.dup(a.fileno())  # some fd number other than 3, as in a busy server
    with a, b, log.open("ab") as out:
        assert _spawn_and_wait(_as_run_detached("sh", "-c", PROBE), out.fileno(), high) == 0
        os.close(high)
    lines = log.read_text().splitlines()
    assert lines[0] == "0 /dev/null"
    assert lines[1:3] == [f"1 {log}", f"2 {log}"]
    assert lines[3].startswith("3 socket:[")
    ignored = int(lines[4].split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)) and not ignored & (1 << (signal.SIGXFSZ - 1))
    assert lines[5] == "1"  # the socket only as fd 3: neither the copy taken nor the caller's fd leak


def test_the_exit_status_is_returned(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        assert _spawn_and_wait(["sh", "-c", "exit 7"], w, r) == 7
    finally:
        os.close(r)
        os.close(w)


def test_an_inheritable_fd_of_the_caller_does_not_reach_crun(tmp_path: Path) -> None:
    """libnftables opened its netlink sockets without close-on-exec; whatever else the server holds
    inheritable (a library's socket, a pipe another thread is handing to its child) stays there."""
    log = tmp_path / "log"
    a, b = socket.socketpair()
    leaky = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER, as libnftables
    leaky.set_inheritable(True)
    listing = 'for fd in /proc/self/fd/*; do readlink "$fd"; done; true'
    with a, b, leaky, log.open("ab") as out:
        assert _spawn_and_wait(_as_run_detached("sh", "-c", listing), out.fileno(), a.fileno()) == 0
        held = log.read_text().splitlines()
        assert f"socket:[{os.fstat(leaky.fileno()).st_ino}]" not in held, held
        assert f"socket:[{os.fstat(a.fileno()).st_ino}]" in held
