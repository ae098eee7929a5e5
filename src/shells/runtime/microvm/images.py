"""Frozen VM images: a saved machine from which any number of VMs are restored.

An image directory holds ``root.qcow2`` and ``workspace.qcow2`` (never written again), ``ram`` (the
guest memory, mapped copy-on-write by every VM restored from it: ``share=off``) and ``state`` (the
device state, saved with ``x-ignore-shared`` so it holds no RAM), plus ``image.json`` (the machine it
was saved on). Three kinds:

- a template image, per template content x vCPUs x memory x boot artifacts, pre-booted once and
  shared by every instance on the host (``cache_dir/microvm/templates/<key>``);
- a snapshot (``data_dir/microvm/images/<snapshot id>``);
- a fork point (``data_dir/microvm/images/fork-…``), kept while a fork's disk still backs onto it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import struct
import subprocess
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from ...domain.errors import RuntimeFailure
from .qemu import Machine

_QCOW2_HEADER = struct.Struct(">4sIQI")
"""The start of a qcow2 header: magic, version, backing file name's offset and length."""
_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_MAX_BACKING_NAME = 1023  # QEMU's own limit


@dataclass(frozen=True)
class Image:
    dir: Path

    @property
    def root(self) -> Path:
        return self.dir / "root.qcow2"

    @property
    def workspace(self) -> Path:
        return self.dir / "workspace.qcow2"

    @property
    def ram(self) -> Path:
        return self.dir / "ram"

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def complete(self) -> bool:
        return (self.dir / "image.json").exists()

    def machine(self) -> Machine:
        return Machine(**json.loads((self.dir / "image.json").read_text(encoding="utf-8")))

    def seal(self, machine: Machine) -> None:
        """Mark the image complete (written last, so a crash mid-way leaves no usable half)."""
        (self.dir / "image.json").write_text(json.dumps(asdict(machine)), encoding="utf-8")

    def new_disk(self, disk: Path, dest: Path) -> None:
        """A qcow2 overlay at ``dest`` over ``disk`` (this image's root or workspace): a copy of one
        blank overlay made per image, since starting ``qemu-img`` costs ~8 ms and the copy far less."""
        seed = disk.with_name(f".{disk.stem}.overlay")
        if not seed.exists():
            partial = seed.with_name(f"{seed.name}.{os.getpid()}-{secrets.token_hex(3)}")
            overlay(disk, partial, relative=False)
            partial.replace(seed)
        shutil.copyfile(seed, dest)


def qcow2_backing(disk: Path) -> Path | None:
    """The file a qcow2 disk reads its unwritten blocks from, as its header names it (resolved
    against the disk's directory, resolved), or None: no backing, not qcow2, or unreadable."""
    try:
        with disk.open("rb") as f:
            header = f.read(_QCOW2_HEADER.size)
            if len(header) < _QCOW2_HEADER.size:
                return None
            magic, _, offset, size = _QCOW2_HEADER.unpack(header)
            if magic != _QCOW2_MAGIC or offset == 0 or not 0 < size <= _QCOW2_MAX_BACKING_NAME:
                return None
            f.seek(offset)
            name = f.read(size).decode(errors="replace")
    except OSError:
        return None
    return (disk.parent / name).resolve()  # an absolute name stays as it is


def qemu_img(*args: str) -> None:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeFailure(f"qemu-img {args[0]} failed: {proc.stderr.strip()[-1000:]}")


def overlay(
    backing: Path,
    dest: Path,
    backing_format: str = "qcow2",
    size: str | None = None,
    *,
    relative: bool = True,
) -> None:
    """A new qcow2 disk ``dest`` whose unwritten blocks read from ``backing`` (named relative to
    ``dest`` when both share a directory and ``relative``, so the pair can be moved together)."""
    name = backing.name if relative and backing.parent == dest.parent else str(backing)
    args = ["create", "-q", "-f", "qcow2", "-b", name, "-F", backing_format, str(dest)]
    qemu_img(*args, *([size] if size else []))


def copy_file(src: Path, dest: Path) -> None:
    """A copy that shares blocks where the filesystem can (reflink) and keeps holes."""
    proc = subprocess.run(
        ["cp", "--reflink=auto", "--sparse=always", str(src), str(dest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeFailure(f"copying {src.name} failed: {proc.stderr.strip()[-1000:]}")


def set_root_owner(image: Path, uid: int, gid: int) -> None:
    """Make the root directory of the ext4 image file ``image`` belong to ``uid:gid``."""
    for field, value in (("uid", uid), ("gid", gid)):
        proc = subprocess.run(
            ["debugfs", "-w", "-R", f"sif / {field} {value}", str(image)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeFailure(f"debugfs sif failed: {proc.stderr.strip()[-1000:]}")


def grow_ext4(image: Path, size_bytes: int) -> None:
    """Grow an ext4 image file (sparsely) and its filesystem to ``size_bytes``."""
    if image.stat().st_size >= size_bytes:
        return
    with image.open("r+b") as f:
        f.truncate(size_bytes)
    for argv in (["e2fsck", "-fy", str(image)], ["resize2fs", str(image)]):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):  # e2fsck: 1 means it fixed something
            raise RuntimeFailure(f"{argv[0]} failed: {proc.stderr.strip()[-1000:]}")


RETIRED = "retired"
"""A file in a deleted snapshot's image that shells' disks still read: it is kept, under its own name
(the disks' qcow2 headers name its files by path), until nothing reads it."""


def retired(image: Path) -> bool:
    """A fork point or a deleted snapshot (``retired-*``: the name such an image had before the
    marker, when it was renamed; disks made since would not find it renamed)."""
    return image.name.startswith(("fork-", "retired-")) or (image / RETIRED).exists()


def snapshot_names(images: Path) -> set[str]:
    """The snapshots among the images in ``images``: not fork points, retired snapshots or images
    being deleted (``.doomed-*``) or fetched (``.*.fetch-*``)."""
    if not images.exists():
        return set()
    return {i.name for i in images.iterdir() if not i.name.startswith(".") and not retired(i)}


def set_aside_unused(images: Path, shells: Path, in_use: Collection[str]) -> list[Path]:
    """Rename the fork points and retired snapshots in ``images`` that nothing backs onto and that
    are not ``in_use`` to ``.doomed-<name>``; return those, with any ``.doomed-*`` a crash left, for
    deletion. Snapshots are never touched.

    Backing onto an image: a shell whose ``vm.json`` (under ``shells``) names it, or an image whose
    disks' qcow2 headers name one of its disks: a snapshot of a fork's child copies the child's
    overlay, so it reads the fork point for as long as the snapshot is kept (and a fork point taken
    of a shell made from a snapshot reads that one). Followed transitively from every shell and
    every kept snapshot."""
    if not images.exists():
        return []
    used = set(in_use)
    for vm_json in shells.glob("*/vm.json"):
        try:
            used.add(Path(json.loads(vm_json.read_text(encoding="utf-8"))["backing"]).name)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    frontier, root = list(used | snapshot_names(images)), images.resolve()
    while frontier:
        for disk in (images / frontier.pop()).glob("*.qcow2"):
            backing = qcow2_backing(disk)
            if backing is not None and backing.parent.parent == root and backing.parent.name not in used:
                used.add(backing.parent.name)
                frontier.append(backing.parent.name)
    doomed = []
    for image in images.iterdir():
        if image.name.startswith(".doomed-"):
            doomed.append(image)
        elif retired(image) and image.name not in used:
            doomed.append(image.rename(image.with_name(f".doomed-{image.name}")))
    return doomed
