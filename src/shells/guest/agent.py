"""The Shells agent: runs inside every shell and serves the host over the guest protocol.

Started by the runtime as ``python3 -I -S -m guest.agent --listen-fd 3`` from the host's agent runtime
(``runtime/agent_runtime.py``: its own interpreter, libraries and precompiled stdlib, whatever the image
holds), fd 3 being the listening socket the host made (``runtime/container/backend.py``).
Every module imported here is in that runtime, which holds nothing else: a new import (also a lazy
one inside a function) is found there by reading these sources; a stdlib module that imports more
lazily is not, so keep start-up imports few.
It is PID 1 of a container, so besides serving requests it reaps every process that ends up as its child.

This module is the entry point: it parses the arguments, builds the op table from the modules that
do the work (``loop`` the event loop and framing, ``execs`` processes and terminals, ``kept`` kept
processes, ``files`` and ``watch`` the file system, ``accounts`` the shell's users, and in a
microvm ``vm``) and runs the loop.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import suppress

from .execs import ExecChannel, op_signal
from .kept import attach_channel, op_processes
from .loop import Agent, Ops, RequestError
from .protocol import SERVE_SUDO

TYPE_CHECKING = False
if TYPE_CHECKING:  # a plain constant, as in ``loop``: typing itself is slow to import
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PROCESS_NAME = b"shells-agent"
"""What ``ps`` shows for PID 1 (its ``comm``)."""


def op_stats(message: dict[str, object]) -> dict[str, object]:
    try:
        with open("/proc/loadavg") as file:
            loadavg = [float(value) for value in file.read().split()[:3]]
        meminfo: dict[str, int] = {}
        with open("/proc/meminfo") as file:
            for line in file:
                key, _, rest = line.partition(":")
                meminfo[key] = int(rest.split()[0]) * 1024
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        processes = sum(1 for name in os.listdir("/proc") if name.isdigit())  # noqa: PTH208 (no pathlib at start)
    except (OSError, ValueError, IndexError) as exc:
        raise RequestError("agent_error", f"Cannot read /proc: {exc}.") from None
    return {
        "loadavg": loadavg,
        "mem_total_bytes": meminfo.get("MemTotal", 0),
        "mem_available_bytes": meminfo.get("MemAvailable", 0),
        "processes": processes,
        "uptime_s": uptime,
    }


def _files() -> ModuleType:
    from . import files

    return files


def _watch() -> ModuleType:
    from . import watch

    return watch


def _later(module: Callable[[], ModuleType], name: str) -> Any:
    """Op ``name`` of the module ``module()`` imports on the first call: ``files`` and ``watch``
    bring pathlib and shutil (and through them re, fnmatch, urllib), a large part of the agent's
    start, which a shell that only runs commands never needs."""

    def op(*args: Any) -> Any:
        return getattr(module(), name)(*args)

    return op


def op_table(*, microvm: bool) -> Ops:
    """Every op the agent answers; a microvm's agent also answers ``resync`` and ``sync``."""
    ops = Ops(
        channel={
            "exec": ExecChannel,
            "read_file": _later(_files, "ReadFileChannel"),
            "write_file": _later(_files, "WriteFileChannel"),
            "watch": _later(_watch, "WatchChannel"),
            "attach": attach_channel,
        },
        connection={"signal": op_signal, "processes": op_processes},
        simple={
            "stat": _later(_files, "op_stat"),
            "list_dir": _later(_files, "op_list_dir"),
            "mkdir": _later(_files, "op_mkdir"),
            "remove": _later(_files, "op_remove"),
            "rename": _later(_files, "op_rename"),
            "stats": op_stats,
        },
    )
    if microvm:
        from .vm import op_resync, op_sync

        ops.connection["resync"] = op_resync
        ops.simple["sync"] = op_sync
    return ops


def adopt_listener(fd: int) -> socket.socket:
    """The listening unix socket the host made and passed as ``fd``.

    Its path lives in a host directory the shell cannot see, so nothing inside can put another
    socket in its place; only this process holds it (close-on-exec from here on, so no child does).
    """
    listener = socket.socket(fileno=fd)
    listener.set_inheritable(False)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        raise SystemExit(f"shells-agent: fd {fd} is not a listening unix stream socket")
    return listener


def refuse_inspection() -> None:
    """Make this process non-dumpable, so code in the shell (same uid, no ``CAP_SYS_PTRACE``) cannot
    reach into it: /proc/1/mem, environ, fd links, maps, and pidfd_getfd all need ptrace access,
    which the kernel refuses for a non-dumpable process. Its children become dumpable again at exec.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    # Started through the runtime's dynamic loader, the process would be named after it in ps.
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)


USAGE = "usage: shells-agent (--listen-fd FD [--serve-sudo] | --serial DEVICE)"


def parse_args(argv: list[str]) -> tuple[str, str, bool]:
    """``(option, value, serve_sudo)`` for exactly one of ``--listen-fd FD`` (an inherited listening
    unix socket; optionally ``--serve-sudo``) and ``--serial DEVICE`` (the virtio-serial port of a
    microvm). By hand rather than argparse, which alone was a fifth of the agent's start-up."""
    serve_sudo = argv[2:] == [SERVE_SUDO]
    if serve_sudo:
        argv = argv[:2]
    if (
        len(argv) != 2
        or argv[0] not in ("--listen-fd", "--serial")
        or (serve_sudo and argv[0] != "--listen-fd")
    ):
        raise SystemExit(USAGE)
    if argv[0] == "--listen-fd" and not argv[1].isdigit():
        raise SystemExit(f"shells-agent: --listen-fd needs a number, not {argv[1]!r}")
    return argv[0], argv[1], serve_sudo


def sudo_client_argv() -> list[str]:
    """How this agent was started (its runtime's loader and interpreter), up to its ``-m``, then the
    sudo client's module."""
    with open("/proc/self/cmdline", "rb") as f:
        words = [w.decode() for w in f.read().split(b"\0") if w]
    return [*words[: words.index("-m")], "-m", "guest.sudo"]


def main(argv: list[str] | None = None) -> int:
    option, value, serve_sudo = parse_args(sys.argv[1:] if argv is None else argv)
    refuse_inspection()
    microvm = option == "--serial"
    # Inside a microvm acknowledged writes must not live only in guest memory a host may drop.
    agent = Agent(op_table(microvm=microvm), sync_writes=microvm)
    if microvm:
        from .vm import serve_serial

        serve_serial(agent, value)
        return 0
    listener = adopt_listener(int(value))
    if serve_sudo:
        from .sudo_server import SudoServer

        SudoServer(agent).start(sudo_client_argv())
    with suppress(OSError):  # nobody may be reading our stdout; the socket is what counts
        print("shells-agent ready", flush=True)
    try:
        agent.serve(listener)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
