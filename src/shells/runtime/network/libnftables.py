"""In-process nftables through ``libnftables`` (ctypes), instead of one ``nft -f -`` process per change.

A batch of commands is one kernel transaction: it applies whole or not at all. Running it in-process
costs ~0.1 ms against ~2.5 ms for spawning ``nft`` (``benchmarks/bench_network.py``), which matters
because every shell start and stop changes the ruleset. One context is shared behind a lock:
libnftables contexts are not safe to use from two threads at once.

Each context holds a NETLINK_NETFILTER socket of the host's network namespace, opened by root, which
libnftables (through ``mnl_socket_open``) leaves inheritable: it is made close-on-exec here, so no
child of the server (a wasm worker, crun) starts holding it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import json
import threading
from pathlib import Path
from typing import Any

from shells.domain.errors import RuntimeFailure

_NFT_CTX_OUTPUT_JSON = 1 << 4


class Nftables:
    def __init__(self) -> None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise RuntimeFailure(
                f"libnftables is missing ({exc}); install the 'libnftables1' package "
                "(scripts/install-system-deps.sh does)."
            ) from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for fn in (lib.nft_ctx_buffer_output, lib.nft_ctx_buffer_error):
            fn.argtypes = [ctypes.c_void_p]
        for fn in (lib.nft_ctx_get_output_buffer, lib.nft_ctx_get_error_buffer):
            fn.argtypes = [ctypes.c_void_p]
            fn.restype = ctypes.c_char_p
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self._lib = lib
        self._lock = threading.Lock()
        self._text = self._context(0)
        self._json = self._context(_NFT_CTX_OUTPUT_JSON)

    def _context(self, flags: int) -> int:
        before = _open_fds()
        ctx: int | None = self._lib.nft_ctx_new(0)
        after = _open_fds()
        _close_on_exec({fd for fd, target in after.items() if before.get(fd) != target})
        if not ctx:
            raise RuntimeFailure("libnftables could not create a context")
        self._lib.nft_ctx_buffer_output(ctx)
        self._lib.nft_ctx_buffer_error(ctx)
        self._lib.nft_ctx_output_set_flags(ctx, flags)
        return ctx

    def _run(self, ctx: int, commands: str) -> str:
        with self._lock:
            rc = self._lib.nft_run_cmd_from_buffer(ctx, commands.encode())
            out = (self._lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
            err = (self._lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
        if rc != 0:
            raise NftError(commands, err.strip())
        return out

    def run(self, commands: str) -> None:
        """Apply a batch of nft commands (the ``nft -f`` language) as one transaction."""
        self._run(self._text, commands)

    def query(self, command: str) -> list[dict[str, Any]]:
        """Run one listing command and return the objects of its JSON output (metainfo dropped)."""
        out = self._run(self._json, command)
        if not out.strip():
            return []
        items: list[dict[str, Any]] = json.loads(out)["nftables"]
        return [item for item in items if "metainfo" not in item]


def _open_fds() -> dict[int, str]:
    """This process's fds and what each refers to (the listing's own fd, closed once read, is left
    out: its number may be the next one opened)."""
    found = {}
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found[int(fd.name)] = str(fd.readlink())
        except FileNotFoundError:
            continue
    return found


def _close_on_exec(fds: set[int]) -> None:
    """Set close-on-exec on ``fds`` (those a library call just opened; one closed since is skipped)."""
    for fd in fds:
        try:
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
        except OSError:
            continue


class NftError(RuntimeFailure):
    """nftables refused a batch; ``missing`` tells whether it named an object that does not exist."""

    def __init__(self, commands: str, error: str) -> None:
        first = commands.strip().splitlines()[0] if commands.strip() else ""
        super().__init__(f"nftables refused the change ({first} …): {error or 'no error text'}")
        self.error = error

    @property
    def missing(self) -> bool:
        return "No such file or directory" in self.error
