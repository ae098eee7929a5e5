"""uid block claims, in a temporary claims directory (the real one is /run/shells/uid-blocks)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shells.domain.errors import QuotaExceeded, RuntimeFailure
from shells.runtime.host import uids
from shells.runtime.host.uids import UidBlocks


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A claims directory that is deleted afterwards (pytest's own tmp_path is kept for a few runs)."""
    with tempfile.TemporaryDirectory(prefix="shells-test-uids-") as directory:
        yield Path(directory)


def test_a_claimed_block_has_its_uid_base_in_the_allowed_range(tmp_path: Path) -> None:
    blocks = UidBlocks("inst-a", tmp_path)
    for _ in range(50):
        base = uids.uid_base(blocks.claim("shell-1"))
        assert 2**20 <= base < 2**31
        assert base % 65536 == 0
        assert base + 65536 <= 2**31


def test_the_claim_file_names_the_instance_and_the_owner(tmp_path: Path) -> None:
    block = UidBlocks("inst-a", tmp_path).claim("shell-7")
    assert (tmp_path / str(block)).read_text() == "inst-a\nshell-7\n"
    assert [p.name for p in tmp_path.iterdir()] == [str(block)]  # no temp file left


def test_concurrent_claims_from_two_instances_never_share_a_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uids, "END_BLOCK", uids.FIRST_BLOCK + 64)  # force collisions
    a, b = UidBlocks("inst-a", tmp_path), UidBlocks("inst-b", tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = list(pool.map(lambda i: (a if i % 2 else b).claim(f"s{i}"), range(64)))
    assert sorted(claimed) == list(range(uids.FIRST_BLOCK, uids.FIRST_BLOCK + 64))
    with pytest.raises(QuotaExceeded):
        a.claim("one-too-many")
    assert len(a.claims_of()) == 32
    assert len(a.claims_of("inst-b")) == 32


def test_release_frees_the_block_for_the_next_claim_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uids, "END_BLOCK", uids.FIRST_BLOCK + 1)
    blocks = UidBlocks("inst-a", tmp_path)
    block = blocks.claim("shell-1")
    blocks.release(block)
    blocks.release(block)
    assert blocks.claim("shell-2") == block


def test_release_refuses_a_block_of_another_instance(tmp_path: Path) -> None:
    theirs = UidBlocks("inst-b", tmp_path).claim("their-shell")
    with pytest.raises(RuntimeFailure, match="belongs to instance 'inst-b'"):
        UidBlocks("inst-a", tmp_path).release(theirs)
    assert (tmp_path / str(theirs)).exists()


def test_claims_of_lists_only_that_instances_blocks_with_their_owners(tmp_path: Path) -> None:
    a, b = UidBlocks("inst-a", tmp_path), UidBlocks("inst-b", tmp_path)
    mine = {a.claim("s1"): "s1", a.claim("s2"): "s2"}
    b.claim("t1")
    (tmp_path / ".claim-123-stray").write_text("inst-a\nghost\n")
    assert a.claims_of() == mine
    assert list(a.claims_of("inst-b").values()) == ["t1"]
    assert b.claims_of() == a.claims_of("inst-b")
    assert UidBlocks("inst-c", tmp_path / "missing").claims_of() == {}


def test_ids_with_newlines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure):
        UidBlocks("a\nb", tmp_path)
    with pytest.raises(RuntimeFailure):
        UidBlocks("a", tmp_path).claim("x\ny")
