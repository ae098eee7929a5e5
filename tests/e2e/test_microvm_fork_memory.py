"""A microvm fork's memory, page by page: every child starts with all of its parent's memory, and
what one child writes stays in that child.

Fork children start their QEMUs while the fork point's RAM file is still being written (each maps
it privately, copy-on-write; docs/microvm.md, "Snapshot, fork"), so a page read before it was
written, or a write that reached the shared file, would show here: 48 MB of random bytes in a
tmpfs inside the guest (guest RAM, nothing on disk) are hashed in the parent, in each child, and
again after one child rewrote every page of it in place. Both kinds of parent: one fresh from its
template (its RAM private, saved into the fork point) and one resumed from a pause (its RAM its
own file, copied into the fork point)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell, Shells

from .harness import running_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

BLOB = "/mnt/mem/blob"
FILL = (
    f"mkdir -p /mnt/mem && mount -t tmpfs -o size=64m none /mnt/mem && head -c 48000000 /dev/urandom > {BLOB}"
)
REWRITE = f"head -c 48000000 /dev/urandom | dd of={BLOB} conv=notrunc status=none"  # every page, in place


@pytest.fixture(scope="module")
def client(data_root: Path) -> Iterator[Shells]:
    with running_server(data_root / "microvm-fork-memory", warm_pool=0) as srv, srv.client() as c:
        yield c


def sh(shell: Shell, script: str) -> str:
    out = shell.commands.run(script)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout)


def digest(shell: Shell) -> str:
    return sh(shell, f"sha256sum {BLOB}").split()[0]


@pytest.mark.parametrize("parent_ram", ["copy-on-write", "own file"])
def test_children_see_all_of_the_parents_memory_and_keep_their_writes_to_themselves(
    client: Shells, parent_ram: str
) -> None:
    parent = client.create("python", runtime="microvm", idle_timeout_s=0)
    children: list[Shell] = []
    try:
        sh(parent, FILL)
        if parent_ram == "own file":
            parent.pause()
            parent.resume()
        before = digest(parent)
        children = parent.fork(2)
        writer, other = children
        assert digest(writer) == before
        assert digest(other) == before
        sh(writer, REWRITE)
        assert digest(writer) != before
        assert digest(other) == before, "a child's write reached its sibling"
        assert digest(parent) == before, "a child's write reached its parent"
        sh(parent, REWRITE)
        assert digest(other) == before, "the parent's write reached a child"
    finally:
        for shell in (*children, parent):
            shell.kill()
