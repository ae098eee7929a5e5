"""libnftables' netlink sockets (root's, in the host's network namespace) are close-on-exec: no
child of the server starts holding one (``libmnl`` opens them inheritable)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from shells.runtime.network.libnftables import Nftables

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a netfilter netlink socket)")


def _sockets() -> set[int]:
    """This process's socket fds (the listing's own fd is gone by the time it is read)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if str(fd.readlink()).startswith("socket:"):
                found.add(int(fd.name))
        except FileNotFoundError:
            continue
    return found


def test_the_contexts_sockets_are_close_on_exec() -> None:
    before = _sockets()
    nft = Nftables()
    nft.query("list tables")
    opened = _sockets() - before
    assert opened, "libnftables opened no socket: the test sees nothing"
    inheritable = [fd for fd in opened if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC]
    assert not inheritable, f"inheritable netlink sockets: {inheritable}"
