"""``sudo`` for container shells, the client half: what ``/usr/local/bin/sudo`` runs in a container
shell whose image has sudo (``python3 -I -S -m guest.sudo ARGS`` on the agent's own runtime).

A container runs with ``no_new_privs`` on a ``nosuid`` root, so the image's setuid ``sudo`` cannot
raise anyone to root. Instead this asks the agent (the shell's root already, in the shell's user
namespace) over a unix socket to run the command: it passes its own stdin, stdout and stderr (the
command reads and writes them directly), its working directory and environment; the agent checks the
caller's uid (``SO_PEERCRED``, which the kernel fills in) against the shell's sudoers
(``guest/sudo_server.py``). Signals this process gets are relayed to the command; its exit status
becomes ours. See docs/security.md ("sudo in container shells").

Wire format (one connection per command): a JSON line ``{"argv", "user", "cwd", "env", "keep_env",
"login"}`` sent with the three descriptors, then ``{"signal": N}`` lines; the agent answers one line,
``{"exit": N}`` or ``{"error": "…"}``, and closes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from contextlib import suppress
from pathlib import Path

SOCKET_PATH = "/run/shells/sudo.sock"
MAX_REQUEST = 256 * 1024
"""Bytes of one request line (argv and environment) the agent reads."""
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
USAGE = "usage: sudo [-nEHkK] [-u user] [-i | -s] [--] [command [arg ...]]"


def parse(argv: list[str]) -> dict[str, object]:
    """The request of a command line, as much of sudo's as a passwordless sudo needs."""
    user, keep_env, login, shell = "root", False, False, False
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        flag = rest.pop(0)
        if flag == "--":
            break
        if flag.startswith("--user="):
            user = flag.partition("=")[2]
            continue
        if flag in ("-u", "--user"):
            if not rest:
                raise SystemExit(USAGE)
            user = rest.pop(0)
            continue
        if flag.startswith("-u") and not flag.startswith("--"):
            user = flag[2:]
            continue
        for letter in flag[1:]:
            if letter == "E":
                keep_env = True
            elif letter == "i":
                login = True
            elif letter == "s":
                shell = True
            elif letter in "nHkK":
                pass  # no password is ever asked and HOME is always the target's
            else:
                raise SystemExit(f"sudo: option -{letter} is not supported in this shell\n{USAGE}")
    if not rest and not (login or shell):
        raise SystemExit(USAGE)
    return {
        "argv": rest,
        "user": user,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "keep_env": keep_env,
        "login": login,
        "shell": shell,
    }


def main(argv: list[str]) -> int:
    request = parse(argv)
    line = json.dumps(request).encode() + b"\n"
    if len(line) > MAX_REQUEST:
        print("sudo: the command line and environment are too large", file=sys.stderr)
        return 1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(SOCKET_PATH)
    except OSError as exc:
        print(f"sudo: this shell's agent does not serve sudo ({exc.strerror})", file=sys.stderr)
        return 1

    def relay(signum: int, frame: object) -> None:
        with suppress(OSError):
            sock.sendall(json.dumps({"signal": signum}).encode() + b"\n")

    for signum in RELAYED:
        signal.signal(signum, relay)
    socket.send_fds(sock, [line], [0, 1, 2])
    reply = b""
    while not reply.endswith(b"\n"):
        try:
            chunk = sock.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        reply += chunk
    try:
        answer = json.loads(reply)
    except ValueError:
        print("sudo: the agent ended the command without an answer", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"sudo: {answer['error']}", file=sys.stderr)
        return 1
    return int(answer.get("exit", 1))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
