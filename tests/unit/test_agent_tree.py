"""Workspace sync through a lying agent (``control.agent_tree``): the host keeps only names it can
make safe keys of, caps what it walks, and never takes a claimed size past its cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from shells.control import agent_tree
from shells.domain.execution import FileEntry, FileKind
from shells.runtime.backend import Backend
from shells.runtime.host.tree_scan import TooManyFiles


def _entry(name: str, kind: FileKind = "file", size: int = 3, mtime: float = 1.5) -> FileEntry:
    return FileEntry(path="/ignored/" + name, name=name, kind=kind, size=size, mode=0o644, mtime=mtime)


class LyingAgent:
    """Answers listings from a table; ``read_file`` streams what the table says, whatever was asked."""

    def __init__(self, tree: dict[str, list[FileEntry]], data: bytes = b"abc") -> None:
        self.tree = tree
        self.data = data
        self.listed: list[str] = []
        self.asked: list[tuple[str, int]] = []

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        self.listed.append(path)
        return self.tree.get(path, [])

    async def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        self.asked.append((path, max_bytes))
        yield self.data


def _backend(agent: LyingAgent) -> Backend:
    return cast(Backend, agent)


@pytest.mark.anyio
async def test_only_safe_names_become_paths() -> None:
    agent = LyingAgent(
        {
            "/workspace": [
                _entry("ok.txt"),
                _entry("sub", "dir"),
                _entry("../escape"),
                _entry(".."),
                _entry("a/b"),
                _entry("nul\x00"),
                _entry("\ud800"),
                _entry("x" * 256),
                _entry("huge", size=10**12),
                _entry("negative", size=-1),
                _entry("nan", mtime=float("nan")),
                _entry("link", "symlink"),
                _entry("dev", "other"),
                _entry("..", "dir"),
            ],
            "/workspace/sub": [_entry("deep.txt", size=7, mtime=2.0), _entry("y" * 61)],
        }
    )
    found = await agent_tree.scan(_backend(agent), "s", 100, max_path_bytes=64, max_file_bytes=1000)
    assert found.files == {"ok.txt": (3, 1_500_000_000), "sub/deep.txt": (7, 2_000_000_000)}
    assert found.skipped == 13  # every bad name, size, time and kind, and the path past 64 bytes
    assert agent.listed == ["/workspace", "/workspace/sub"]  # the '..' directory was never entered


@pytest.mark.anyio
async def test_an_endless_tree_is_cut_at_the_cap() -> None:
    class Endless(LyingAgent):
        async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
            return [_entry("d", "dir"), _entry("f")]

    with pytest.raises(TooManyFiles):
        await agent_tree.scan(_backend(Endless({})), "s", 50, max_path_bytes=10_000, max_file_bytes=1000)


@pytest.mark.anyio
async def test_a_file_is_spooled_with_the_hosts_cap(tmp_path: Path) -> None:
    agent = LyingAgent({}, data=b"content")
    async with agent_tree.spooled(_backend(agent), "s", "out/r.txt", 123, tmp_path) as f:
        assert f.read() == b"content"
        assert list(tmp_path.iterdir()) == []  # the spool has no name: nothing is left after a crash
    assert agent.asked == [("/workspace/out/r.txt", 123)]
