"""``shells term ID``: mint a terminal credential and attach this terminal to a shell.

The local terminal goes to raw mode (every key, Ctrl-C included, goes to the shell); window size
changes follow; the shell exiting (Ctrl-D at an empty prompt) ends the command with its exit code.
The credential travels in the first WebSocket message, not in the URL, so no proxy log records it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..domain.errors import ERRORS_BY_CODE, ShellsError
from .args import DOOR, Subparsers, connect

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

EXIT_ERROR = 2


def cmd_term(args: argparse.Namespace) -> int:
    with connect() as client:
        cred = client.get(args.id).terminals.create(args.ttl)
    return attach(cred.url, cred.token)


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size() -> tuple[int, int]:
    size = shutil.get_terminal_size()
    return size.columns, size.lines


def attach(url: str, token: str) -> int:
    """Relay this process's stdin/stdout to a terminal session; return the remote exit code."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    cols, rows = _size()
    try:
        ws = connect(
            f"{url}?{urlencode({'cols': cols, 'rows': rows})}",
            additional_headers={"X-Shells-Door": DOOR},
            max_size=None,
        )
    except InvalidStatus as exc:
        raise _error_of(bytes(exc.response.body or b"")) from None
    with ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        first = _message(ws.recv())
        if first.get("type") != "ready":
            raise _error_of(first)
        stdin = sys.stdin.fileno()
        with _raw(stdin):
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_w, False)
            previous = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
            try:
                threading.Thread(target=_pump_input, args=(ws, stdin, wake_r), daemon=True).start()
                return _pump_output(ws)
            finally:
                signal.signal(signal.SIGWINCH, previous)
                os.close(wake_w)


def _pump_input(ws: ClientConnection, stdin: int, wake: int) -> None:
    """Keystrokes and window changes to the server; all sends happen on this thread."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            ready, _, _ = select.select([stdin, wake], [], [])
            if wake in ready:
                os.read(wake, 64)
                cols, rows = _size()
                ws.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))
            if stdin in ready:
                data = os.read(stdin, 4096)
                if not data:  # stdin is not a terminal and ended: nothing more to type
                    return
                ws.send(data)
    except (ConnectionClosed, OSError):
        return
    finally:
        os.close(wake)


def _pump_output(ws: ClientConnection) -> int:
    from websockets.exceptions import ConnectionClosed

    out = sys.stdout.buffer
    try:
        for message in ws:
            if isinstance(message, bytes):
                out.write(message)
                out.flush()
                continue
            event = _message(message)
            if event.get("type") == "exit":
                return int(event.get("exit_code", 0))
            if event.get("type") == "error":
                raise _error_of(event)
    except ConnectionClosed as exc:
        reason = exc.rcvd.reason if exc.rcvd is not None else "the connection closed"
        print(f"\r\nshells: terminal closed: {reason}", file=sys.stderr)
    return EXIT_ERROR


def _message(raw: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_of(body: bytes | dict[str, Any] | None) -> ShellsError:
    """The server's typed error, from a refused handshake's body or an error message."""
    event = body if isinstance(body, dict) else _message(body or b"")
    err = event.get("error") if isinstance(event.get("error"), dict) else {}
    assert isinstance(err, dict)
    cls = ERRORS_BY_CODE.get(str(err.get("code")), ShellsError)
    return cls(str(err.get("message", "The terminal was refused.")), dict(err.get("details") or {}))


def register(sub: Subparsers) -> None:
    s = sub.add_parser("term", help="attach this terminal to a shell (Ctrl-D at an empty prompt leaves)")
    s.add_argument("id")
    s.add_argument("--ttl", type=int, default=None, metavar="SECONDS", help="credential lifetime (<= 900)")
    s.set_defaults(func=cmd_term)
