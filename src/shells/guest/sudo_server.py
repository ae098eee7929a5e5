"""``sudo`` for container shells, the agent half (the client and the wire format: ``guest/sudo.py``).

Served only when the runtime asks (``--serve-sudo``: container shells whose image has
``/usr/bin/sudo``). The agent listens on ``/run/shells/sudo.sock`` (anyone in the shell may connect)
and writes ``/usr/local/bin/sudo``, a two-line script that starts the client on the agent's runtime.
For each connection it takes the caller's uid from ``SO_PEERCRED`` (the kernel's, not the caller's
word) and runs the command only if the shell's sudoers give that user (or one of its groups)
passwordless sudo to everything: a line ``WHO ALL=(ALL[:ALL]) NOPASSWD: ALL`` in ``/etc/sudoers`` or
``/etc/sudoers.d/*``, read only from root-owned files nobody else may write (as sudo demands). No
other rule is understood, so nothing narrower than "everything" is ever widened.

The command is the agent's child: the shell's root (or ``-u``'s user), inside the shell's user
namespace, with the agent's own ``no_new_privs``, seccomp filter and capability set: exactly what a
command the host runs with ``user="root"`` has, and nothing more (docs/security.md).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import signal
import socket
import stat
import struct
import subprocess
from contextlib import suppress
from pathlib import Path

from .accounts import Account
from .execs import STANDARD_PATH
from .loop import READ, Agent, RequestError, log
from .sudo import MAX_REQUEST, RELAYED, SOCKET_PATH

SHIM_PATH = "/usr/local/bin/sudo"
SHIM_MARK = "# shells-sudo"
"""The shim's second line: an existing /usr/local/bin/sudo without it is the image's, left alone."""
REAL_SUDO = "/usr/bin/sudo"
SUDOERS = "/etc/sudoers"
SUDOERS_DIR = "/etc/sudoers.d"
GRANTS = frozenset({"ALL=(ALL)NOPASSWD:ALL", "ALL=(ALL:ALL)NOPASSWD:ALL"})
"""A sudoers rule, spaces removed, that gives passwordless sudo to everything: the only kind honoured."""
MAX_SUDO_CALLS = 64
"""Commands run through sudo at once in one shell; more connections are refused."""
KEPT_ENV = ("TERM", "COLORTERM", "LANG", "LANGUAGE", "LC_ALL", "DISPLAY")
"""What sudo's default ``env_reset`` keeps of the caller's environment (besides the LC_* family)."""
UCRED = struct.Struct("3i")


def _trusted(path: str, directory: bool = False) -> bool:
    """Root's own, not a link, writable by nobody else: the only sudoers files sudo itself reads."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    return st.st_uid == 0 and not st.st_mode & 0o022 and kind_ok


def _sudoers_files() -> list[str]:
    files = [SUDOERS] if _trusted(SUDOERS) else []
    if _trusted(SUDOERS_DIR, directory=True):
        with suppress(OSError):
            for path in sorted(Path(SUDOERS_DIR).iterdir()):
                # as sudo's #includedir: names with a dot or ending in ~ are skipped
                if "." not in path.name and not path.name.endswith("~") and _trusted(str(path)):
                    files.append(str(path))
    return files


def granted(uid: int) -> str | None:
    """The user name of ``uid`` if the sudoers give it passwordless sudo to everything (root always)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return None
    if uid == 0:
        return entry.pw_name
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    names = {entry.pw_name} | {"%" + grp.getgrgid(gid).gr_name for gid in groups if _has_group(gid)}
    for path in _sudoers_files():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read(1024 * 1024).splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and "".join(words[1:]) in GRANTS and names & set(words[0].split(",")):
                return entry.pw_name
    return None


def _has_group(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def _environment(
    request: dict[str, object], caller: str, uid: int, gid: int, account: Account
) -> dict[str, str]:
    given = request.get("env")
    env = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
    argv = request.get("argv")
    sudo_vars = {
        "SUDO_USER": caller,
        "SUDO_UID": str(uid),
        "SUDO_GID": str(gid),
        "SUDO_COMMAND": " ".join(str(a) for a in argv) if isinstance(argv, list) else "",
    }
    if request.get("keep_env") is True:
        return {**env, **sudo_vars}
    kept = {k: v for k, v in env.items() if k in KEPT_ENV or k.startswith("LC_")}
    return {"PATH": STANDARD_PATH, **kept, **account.environment(), **sudo_vars}


def _command(request: dict[str, object], account: Account) -> tuple[list[str], str]:
    argv = request.get("argv")
    cwd = request.get("cwd")
    if not isinstance(argv, list) or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise RequestError("invalid_request", "the command must be a list of strings")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        cwd = "/"
    if request.get("login") is True:
        return ([account.shell, "-l", "-c", " ".join(argv)] if argv else [account.shell, "-l"]), account.home
    if request.get("shell") is True:
        return ([account.shell, "-c", " ".join(argv)] if argv else [account.shell]), cwd
    if not argv:
        raise RequestError("invalid_request", "no command given")
    return argv, cwd


class SudoServer:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.calls: set[SudoCall] = set()
        self.listener: socket.socket | None = None

    def start(self, shim_argv: list[str]) -> None:
        """Listen and write the shim; on any trouble log it and serve nothing (the shell still runs)."""
        if not Path(REAL_SUDO).exists():
            return  # the image has no sudo: nothing asks for it
        try:
            directory = Path(SOCKET_PATH).parent
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            st = directory.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
                raise OSError(f"{directory} is not root's own directory")
            Path(SOCKET_PATH).unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(SOCKET_PATH)
            Path(SOCKET_PATH).chmod(0o666)
            listener.listen(16)
            listener.setblocking(False)
            self._write_shim(shim_argv)
        except OSError as exc:
            log(f"sudo is not served: {exc}")
            return
        self.listener = listener
        self.agent.set_interest(listener.fileno(), READ, lambda mask: self._accept())

    @staticmethod
    def _write_shim(argv: list[str]) -> None:
        with suppress(FileNotFoundError), open(SHIM_PATH, encoding="utf-8", errors="replace") as f:
            if SHIM_MARK not in f.read(4096):
                raise OSError(f"{SHIM_PATH} is the image's own")
        quoted = [f"'{a}'" for a in argv if "'" not in a]
        if len(quoted) != len(argv):
            raise OSError("the agent's runtime path holds a quote")
        # The file stays in the image (a snapshot or an export carries it): where no agent runtime
        # serves it (a microvm, another runtime) it hands over to the image's own sudo.
        temp = Path(SHIM_PATH + ".shells-new")
        temp.write_text(
            "#!/bin/sh\n"
            f"{SHIM_MARK}: the Shells agent runs the command (docs/security.md)\n"
            f'[ -x {quoted[0]} ] && [ -S {SOCKET_PATH} ] || exec {REAL_SUDO} "$@"\n'
            f'exec {" ".join(quoted)} "$@"\n',
            encoding="utf-8",
        )
        temp.chmod(0o755)
        temp.rename(SHIM_PATH)

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        if len(self.calls) >= MAX_SUDO_CALLS:
            _answer(sock, {"error": f"at most {MAX_SUDO_CALLS} sudo commands run at once in this shell"})
            return
        sock.setblocking(False)
        self.calls.add(SudoCall(self, sock))


def _answer(sock: socket.socket, reply: dict[str, object]) -> None:
    with suppress(OSError):
        sock.setblocking(True)
        sock.settimeout(1.0)
        sock.sendall(json.dumps(reply).encode() + b"\n")
    sock.close()


class SudoCall:
    """One connection: its request (with the caller's three descriptors), then its command, whose
    session gets the signals the caller relays and a SIGHUP if the caller goes away first."""

    def __init__(self, server: SudoServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.buffer = b""
        self.fds: list[int] = []
        self.pid: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        """Held until reaped: a dropped Popen waits on its pid itself, taking the status from the loop."""
        self.done = False
        _, self.uid, self.gid = UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size)
        )
        self.agent.set_interest(sock.fileno(), READ, lambda mask: self._on_readable())

    @property
    def agent(self) -> Agent:
        return self.server.agent

    def _on_readable(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 65536, 3, socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if self.pid is not None or self.fds:
            for fd in fds:
                os.close(fd)
        else:
            self.fds = fds
        if not data:
            self._hang_up()
            return
        self.buffer += data
        if self.pid is None:
            if len(self.buffer) > MAX_REQUEST:
                self._finish({"error": "the request is too large"})
            elif b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                self._start(line)
        while self.pid is not None and b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            self._relay(line)
        self.buffer = self.buffer[-MAX_REQUEST:]

    def _start(self, line: bytes) -> None:
        try:
            caller = granted(self.uid)
            if caller is None:
                raise RequestError(
                    "permission_denied", "you may not use sudo in this shell (see /etc/sudoers.d)"
                )
            if len(self.fds) != 3:
                raise RequestError("invalid_request", "send stdin, stdout and stderr with the request")
            request = json.loads(line)
            if not isinstance(request, dict):
                raise RequestError("invalid_request", "the request is not a JSON object")
            account = Account.named(str(request.get("user") or "root"))
            argv, cwd = _command(request, account)
            env = _environment(request, caller, self.uid, self.gid, account)
            process = subprocess.Popen(
                argv,
                stdin=self.fds[0],
                stdout=self.fds[1],
                stderr=self.fds[2],
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                user=account.uid,
                group=account.gid,
                extra_groups=list(account.groups),
            )
        except RequestError as exc:
            self._finish({"error": exc.message})
            return
        except (OSError, ValueError) as exc:
            self._finish({"error": f"{exc}"})
            return
        finally:
            for fd in self.fds:
                os.close(fd)
            self.fds = []
        self.process, self.pid = process, process.pid
        self.agent.on_exit[process.pid] = self._on_exit

    def _relay(self, line: bytes) -> None:
        with suppress(ValueError, AttributeError):
            signum = int(json.loads(line).get("signal"))
            if signum in RELAYED and self.pid is not None:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signum)

    def _hang_up(self) -> None:
        """The caller went away: the command's session gets SIGHUP, as from a closed terminal."""
        if self.pid is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGHUP)
        self._close()

    def _on_exit(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if self.process is not None:
            self.process.returncode = code  # so Popen never waits on its own
        self._finish({"exit": code if code >= 0 else 128 - code})

    def _finish(self, reply: dict[str, object]) -> None:
        if not self.done:
            self.agent.set_interest(self.sock.fileno(), 0)
            _answer(self.sock, reply)
        self._close()

    def _close(self) -> None:
        if not self.done:
            self.done = True
            with suppress(KeyError, ValueError):
                self.agent.set_interest(self.sock.fileno(), 0)
            self.sock.close()
            for fd in self.fds:
                os.close(fd)
            self.fds = []
        self.server.calls.discard(self)
