"""The tenancy commands as people run them: ``shells admin tenant create``, ``shells admin token create``,
``shells audit`` and ``shells term ID`` (on a real pseudo-terminal, as from a terminal emulator)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import select
import struct
import subprocess
import sys
import termios
import time

from .harness import ServerProcess
from .tenancy import ADMIN

SHELLS = [sys.executable, "-m", "shells.cli.main"]
WAIT_S = 20.0


def shells(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": token}
    return subprocess.run([*SHELLS, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout.strip()


def refused(result: subprocess.CompletedProcess[str], code: str) -> None:
    assert result.returncode == 2, (result.args, result.stdout, result.stderr)
    assert f"shells: {code}:" in result.stderr, result.stderr


def test_tenants_tokens_and_the_audit_trail_from_the_command_line(server: ServerProcess) -> None:
    admin = server.token
    acme, globex = (f"{n}-{secrets.token_hex(3)}" for n in ("acme", "globex"))
    assert ok(shells(server, admin, "admin", "tenant", "create", acme, "--max-shells", "3")) == acme
    assert ok(shells(server, admin, "admin", "tenant", "create", globex)) == globex
    everything = ",".join(ADMIN)
    minted = shells(server, admin, "admin", "token", "create", "--tenant", acme, "--principal", "ops",
                    "--scopes", everything, "--kind", "person")  # fmt: skip
    ops = ok(minted)
    assert re.fullmatch(r"shl_[a-z0-9]{8}_\S{43}", ops) and "shown only now" in minted.stderr
    other = ok(shells(server, admin, "admin", "token", "create", "--tenant", globex, "--principal", "g",
                      "--scopes", everything))  # fmt: skip
    dev = ok(shells(server, ops, "admin", "token", "create", "--principal", "dev", "--scopes", "shells.read",
                    "--expires-in", "600"))  # fmt: skip

    sid = ok(shells(server, ops, "create", "--language", "bash"))
    try:
        assert sid in ok(shells(server, ops, "ls"))
        assert sid not in ok(shells(server, other, "ls"))
        refused(shells(server, other, "get", sid), "shell_not_found")
        refused(shells(server, dev, "get", sid), "shell_not_found")  # dev holds no role on it yet
        refused(shells(server, dev, "exec", sid, "--", "true"), "shell_not_found")  # looked up first
        refused(shells(server, dev, "create", "--language", "bash"), "permission_denied")  # no scope
        refused(shells(server, ops, "admin", "tenant", "create", "sneaky"), "permission_denied")
        refused(shells(server, ops, "admin", "token", "create", "--scopes", "shells.root"), "invalid_request")
        refused(shells(server, dev, "audit"), "permission_denied")
        assert ok(shells(server, ops, "exec", sid, "--", "sh", "-c", "echo $((6*7))")) == "42"

        trail = json.loads(ok(shells(server, ops, "audit", "--shell", sid, "--json")))
        assert {(e["door"], e["action"]) for e in trail} >= {("cli", "create"), ("cli", "exec")}
        lines = ok(shells(server, ops, "audit", "--actor", "dev")).splitlines()
        assert any("get_shell" in line and "shell_not_found" in line for line in lines)
        assert all(line.split()[2] == "dev" for line in lines)
    finally:
        ok(shells(server, ops, "rm", sid))
    assert "DESTRUCTIVE" in ok(shells(server, ops, "audit", "--shell", sid, "--action", "delete"))


def _set_window(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _screen_until(fd: int, pattern: bytes, screen: bytearray) -> None:
    deadline = time.monotonic() + WAIT_S
    while not re.search(pattern, bytes(screen)):
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"waited for {pattern!r}; the screen shows {bytes(screen)[-300:]!r}"
        screen += os.read(fd, 65536)


def test_shells_term_attaches_the_local_terminal(server: ServerProcess) -> None:
    token = server.token
    sid = ok(shells(server, token, "create", "--language", "bash"))
    main, terminal = os.openpty()
    try:
        _set_window(main, 100, 30)
        before = termios.tcgetattr(terminal)
        env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": token}
        cli = subprocess.Popen(
            [*SHELLS, "term", sid],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
            start_new_session=True,
            preexec_fn=_take_terminal,  # noqa: PLW1509 (the test process starts no threads of its own)
        )
        screen = bytearray()
        _screen_until(main, rb"# $", screen)  # bash's prompt: typeahead before it may be lost
        os.write(main, b"stty size\r")  # raw mode: Enter is \r, as a terminal sends it
        _screen_until(main, rb"30 100\r\n", screen)
        _set_window(main, 120, 40)  # the kernel sends the CLI SIGWINCH; it tells the shell
        deadline = time.monotonic() + WAIT_S
        while True:  # the resize and the next keystrokes travel independently: ask until it shows
            os.write(main, b"stty size\r")
            answer = bytearray()
            _screen_until(main, rb"(\d+ \d+)\r\n", answer)
            if b"40 120\r\n" in answer:
                break
            assert time.monotonic() < deadline, bytes(answer)
            time.sleep(0.1)
        os.write(main, b"exit 7\r")
        assert cli.wait(timeout=WAIT_S) == 7
        assert termios.tcgetattr(terminal) == before  # raw mode was undone
    finally:
        os.close(main)
        os.close(terminal)
        ok(shells(server, token, "rm", sid))
    sessions = [e for e in json.loads(ok(shells(server, token, "audit", "--shell", sid, "--json")))
                if e["action"] == "term.session"]  # fmt: skip
    assert [(e["door"], e["details"]["exit_code"]) for e in sessions] == [("cli", 7)]
