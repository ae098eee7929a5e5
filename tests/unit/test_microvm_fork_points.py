"""Which microvm images the collection may delete: never one a shell backs onto or a fork is writing."""

from __future__ import annotations

import json
from pathlib import Path

from shells.runtime.microvm.images import set_aside_unused


def _shell(shells: Path, name: str, backing: Path) -> None:
    (shells / name).mkdir(parents=True)
    (shells / name / "vm.json").write_text(json.dumps({"backing": str(backing)}), encoding="utf-8")


def test_only_unused_fork_points_and_retired_snapshots_are_set_aside(tmp_path: Path) -> None:
    images, shells = tmp_path / "images", tmp_path / "shells"
    for name in ("fork-used", "fork-writing", "fork-unused", "retired-unused", "retired-used", "snap_1"):
        (images / name).mkdir(parents=True)
        (images / name / "ram").write_bytes(b"x")
    (images / ".doomed-fork-old").mkdir()
    _shell(shells, "sh_a", images / "fork-used")
    _shell(shells, "sh_b", images / "retired-used")
    (shells / "sh_creating").mkdir()  # no vm.json yet

    doomed = set_aside_unused(images, shells, {"fork-writing"})

    assert {p.name for p in doomed} == {".doomed-fork-unused", ".doomed-retired-unused", ".doomed-fork-old"}
    assert all(p.exists() for p in doomed)  # moved aside, deleted by the caller
    left = {p.name for p in images.iterdir()} - {p.name for p in doomed}
    assert left == {"fork-used", "fork-writing", "retired-used", "snap_1"}


def test_no_images_directory_means_nothing_to_collect(tmp_path: Path) -> None:
    assert set_aside_unused(tmp_path / "images", tmp_path / "shells", set()) == []
