"""What workspace sync reads and accepts, without a server: the host's listing of a tree a shell can
write never follows the shell's links, and a ``sync`` body that cannot work is a 400 naming the
field to fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import InvalidRequest
from shells.domain.sync import parse_sync
from shells.runtime.host.tree_scan import TooManyFiles, scan

GOOD: dict[str, Any] = {
    "bucket": "alice-runs",
    "endpoint": "https://s3.example.com",
    "prefix": "/run-7/",
    "credentials": {"access_key_id": "AKIA", "secret_access_key": "s3cr3t"},
}


def test_the_listing_keeps_regular_files_and_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "shadow").write_text("root:secret")
    ws = tmp_path / "workspace"
    (ws / "out" / "deep").mkdir(parents=True)
    (ws / "out" / "r.txt").write_text("result")
    (ws / "out" / "deep" / "x.bin").write_bytes(b"\0" * 10)
    (ws / "shadow").symlink_to(outside / "etc" / "shadow")
    (ws / "etc-dir").symlink_to(outside / "etc")
    os.mkfifo(ws / "pipe")
    found = scan(ws, max_files=100)
    assert set(found.files) == {"out/r.txt", "out/deep/x.bin"}
    assert found.files["out/r.txt"][0] == 6
    assert found.skipped == 3  # two links and a pipe


def test_a_tree_past_the_limit_is_refused(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(TooManyFiles):
        scan(tmp_path, max_files=4)


def test_a_good_sync_body_is_normalised() -> None:
    target = parse_sync(GOOD)
    assert target is not None
    assert (target.endpoint, target.bucket, target.prefix) == (
        "https://s3.example.com",
        "alice-runs",
        "run-7",
    )
    assert "s3cr3t" not in str(target.to_public())
    assert parse_sync(None) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bucket": "No_Such"}, "sync.bucket"),
        ({"endpoint": "ftp://s3.example.com"}, "sync.endpoint"),
        ({"endpoint": "https://key:secret@s3.example.com"}, "sync.endpoint"),
        ({"endpoint": "https://s3.example.com/bucket"}, "sync.endpoint"),
        ({"prefix": "a/../b"}, "sync.prefix"),
        ({"credentials": {"access_key_id": "AKIA"}}, "sync.credentials"),
        ({"credentials": {"access_key_id": "", "secret_access_key": "x"}}, "sync.credentials"),
        ({"region": ""}, "sync.region"),
        ({"surprise": 1}, "sync"),
    ],
)
def test_a_sync_body_that_cannot_work_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_sync(GOOD | change)
    assert caught.value.details["field"] == field
    assert "s3cr3t" not in caught.value.message
