"""Which microvm images the collection may delete: never one a shell backs onto or a fork is writing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shells.runtime.microvm.images import overlay, qcow2_backing, set_aside_unused


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


def _image(images: Path, name: str, backing: Path | None = None) -> Path:
    """An image directory whose root disk is a real qcow2 (over ``backing``'s root disk, if given)."""
    (images / name).mkdir(parents=True)
    disk = images / name / "root.qcow2"
    if backing is None:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    else:
        overlay(backing / "root.qcow2", disk, relative=False)
    return images / name


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img (qemu-utils)")
def test_an_image_a_kept_snapshot_backs_onto_is_kept_however_deep(tmp_path: Path) -> None:
    images, shells = tmp_path / "images", tmp_path / "shells"
    # fork-a: a fork point; snap_1: a snapshot of one of its children (the child since deleted);
    # fork-b: a fork of a shell made from snap_1, whose children are gone too; snap_2 backs onto it.
    fork_a = _image(images, "fork-a")
    fork_b = _image(images, "fork-b", _image(images, "snap_1", fork_a))
    _image(images, "snap_2", fork_b)
    retired = _image(images, "retired-snap_0")
    _image(images, "fork-c", retired)  # nothing backs onto fork-c: it goes, and so does what it read

    doomed = {p.name for p in set_aside_unused(images, shells, set())}

    assert doomed == {".doomed-fork-c", ".doomed-retired-snap_0"}
    assert qcow2_backing(images / "snap_2" / "root.qcow2") == (fork_b / "root.qcow2").resolve()
    assert qcow2_backing(fork_a / "root.qcow2") is None
