"""A microvm snapshot as portable files for the object store, and back (docs/storage.md, "microvm
snapshots").

A snapshot image (``images.py``) is not self-contained: its two disks are qcow2 overlays whose
unwritten blocks come from the chain below them (a template's pre-booted image over the template's
ext4, perhaps a fork point between), all paths of this host. So each disk goes out as two parts:

- ``<disk>``: the snapshot's own overlay with its backing name taken out (the guest's writes since
  the image it was made from: usually small);
- ``<disk>-base``: the whole chain below it flattened into one standalone qcow2 (``qemu-img
  convert``, deterministic: the same chain gives the same bytes, so every snapshot of shells made
  from one template image names the same blob, and the object store keeps it once; the exporting
  host packs each chain once and keeps it while a disk reads that chain).

plus ``ram`` (the guest memory file), ``state`` (the device state, saved without RAM) and
``machine`` (the machine it was saved on and the fingerprint of what its state depends on). All but
``machine`` are zstd-compressed: free RAM and unwritten disk clusters cost next to nothing.

A receiving host keeps each base it fetched under ``bases/<sha256 of the part>.qcow2`` (shared by
every snapshot fetched with it, removed when no image's disk backs onto it any more), unpacks the
rest into a hidden directory beside the snapshot's place, points each overlay at its base, checks
that every qcow2 names no other file, and renames the directory into place: either the whole
snapshot is there or none of it. Only a machine with the same boot artifacts and machine arguments
can load the saved state (``Machine.fingerprint``); any other gets a typed refusal, not a VM that
fails to restore."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict
from pathlib import Path

import anyio

from ...domain.errors import ActionNotSupported, RuntimeFailure
from ...objects.store import file_sha256
from .images import Image, qcow2_backing, qemu_img
from .qemu import Machine

DISKS = ("root", "workspace")
ZSTD_LEVEL = 3
MACHINE = "machine"
"""The part that says which machine the state was saved on (JSON, not compressed)."""


async def _run(what: str, argv: list[str]) -> None:
    """A process of ours, at the lowest CPU priority (nobody waits on an upload; a server that stops
    kills it)."""
    try:
        await anyio.run_process(["nice", "-n", "19", *argv], check=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeFailure(f"{what} failed: {exc.stderr[-500:]!r}") from None


async def _compress(src: Path, dest: Path) -> Path:
    argv = ["zstd", "-q", f"-{ZSTD_LEVEL}", "-T2", "-f", str(src), "-o", str(dest)]
    await _run(f"compressing {src.name}", argv)
    return dest


async def _decompress(src: Path, dest: Path) -> None:
    argv = ["zstd", "-q", "-d", "--sparse", "-f", str(src), "-o", str(dest)]
    await _run(f"decompressing {dest.name}", argv)


async def export(image: Image, dest: Path, fingerprint: str, bases: Bases) -> dict[str, Path]:
    """The parts of the snapshot ``image`` written in ``dest``: part name → file (a base packed for
    an earlier export of an image over the same chain is taken from ``bases``)."""
    if not image.complete:
        raise RuntimeFailure(f"snapshot {image.dir.name} is not on this host")
    parts: dict[str, Path] = {}
    for disk in DISKS:
        overlay = image.dir / f"{disk}.qcow2"
        bare = dest / f"{disk}.qcow2"
        await anyio.to_thread.run_sync(shutil.copyfile, overlay, bare)
        backing = qcow2_backing(overlay)
        if backing is not None:
            parts[f"{disk}-base"] = await bases.packed(backing, dest / f"{disk}-base.zst")
            await anyio.to_thread.run_sync(qemu_img, "rebase", "-u", "-b", "", str(bare))
        parts[disk] = await _compress(bare, dest / f"{disk}.zst")
        bare.unlink()
    for name in ("ram", "state"):
        if (image.dir / name).exists():
            parts[name] = await _compress(image.dir / name, dest / f"{name}.zst")
    machine = {"machine": asdict(image.machine()), "fingerprint": fingerprint}
    (dest / MACHINE).write_text(json.dumps(machine), encoding="utf-8")
    parts[MACHINE] = dest / MACHINE
    return parts


def saved_machine(parts: Mapping[str, Path]) -> tuple[Machine, str]:
    """The machine a snapshot was saved on and its fingerprint, from its ``machine`` part."""
    try:
        raw = json.loads(parts[MACHINE].read_text(encoding="utf-8"))
        return Machine(**raw["machine"]), str(raw["fingerprint"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeFailure(f"the snapshot's machine description is unreadable: {exc}") from None


class Bases:
    """Flattened bases, in one directory: those fetched with snapshots, ``<sha256 of the
    part>.qcow2``, and those packed for exports, ``<export_key of the chain>.zst`` (the chain below a
    template image's disks is the same for every snapshot of its shells: flattened once, not at
    every upload). ``pinned`` holds the fetched ones an import is pointing overlays at (nothing
    backs onto them yet). Each goes when no disk backs onto its chain any more."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pinned: list[str] = []
        self._packing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        """One packing per chain at a time (a pause's save and a drain's move export at once)."""

    async def packed(self, backing: Path, dest: Path) -> Path:
        """``dest``: the chain whose top is ``backing`` flattened into one standalone qcow2, zstd."""
        kept = self.dir / export_key(backing)
        async with self._packing[kept.name]:
            if not kept.exists():
                await self._pack(backing, kept, dest.with_suffix(".qcow2"))
        await anyio.to_thread.run_sync(_link_or_copy, kept, dest)  # collection may remove ``kept``
        return dest

    async def _pack(self, backing: Path, kept: Path, flat: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = ["qemu-img", "convert", "-m", "1", "-f", "qcow2", "-O", "qcow2", str(backing), str(flat)]
        partial = self.dir / f".{kept.name}.{os.getpid()}-{os.urandom(4).hex()}"
        try:
            await _run(f"flattening {backing}", argv)
            await _compress(flat, partial)
            partial.rename(kept)
        finally:
            partial.unlink(missing_ok=True)
            flat.unlink(missing_ok=True)

    async def ensure(self, part: Path) -> Path:
        """The base made from the part file ``part`` (decompressed now unless here already), pinned:
        the caller unpins it once an image's disk backs onto it."""
        name = f"{await anyio.to_thread.run_sync(file_sha256, part)}.qcow2"
        self.pinned.append(name)
        base = self.dir / name
        if not base.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            partial = self.dir / f".{name}.{os.getpid()}-{os.urandom(4).hex()}"
            try:
                await _decompress(part, partial)
                await anyio.to_thread.run_sync(_require_standalone, partial)
                partial.rename(base)
            finally:
                partial.unlink(missing_ok=True)
        return base

    def unused(self, disk_dirs: Collection[Path]) -> list[Path]:
        """The bases no qcow2 in ``disk_dirs`` backs onto and no import pinned (not the partial ones
        an import is writing: ``cut_short`` finds those a crash left)."""
        if not self.dir.exists():
            return []
        used = {p.name for p in self.dir.glob(".*")} | set(self.pinned)
        for directory in disk_dirs:
            for disk in directory.glob("*.qcow2"):
                backing = qcow2_backing(disk)
                if backing is not None and backing.parent == self.dir.resolve():
                    used.add(backing.name)
                elif backing is not None:
                    used.add(export_key(backing))
        return [p for p in self.dir.iterdir() if p.name not in used]


def export_key(backing: Path) -> str:
    """The name of the packed chain whose top is ``backing``: its path and identity (a template
    image booted again at the same path is another file). The files of a chain never change."""
    try:
        st = backing.stat()
    except OSError:
        return ""
    identity = f"{backing}\0{st.st_dev}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_size}"
    return f"{hashlib.sha256(identity.encode()).hexdigest()[:40]}.zst"


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def cut_short(images: Path, bases: Path) -> list[Path]:
    """What imports a crash cut short left (at start-up, when no import runs): hidden snapshot
    directories being fetched into ``images``, partial bases in ``bases``."""
    found = list(images.glob(".*.fetch-*")) if images.exists() else []
    return found + (list(bases.glob(".*")) if bases.exists() else [])


async def import_into(
    parts: Mapping[str, Path], image: Image, bases: Bases, fingerprint: Callable[[Machine], str]
) -> None:
    """Make the snapshot ``image`` from parts written by ``export`` (nothing if it is here);
    ``fingerprint`` is this host's for a machine (its saved state loads only where they match)."""
    if image.complete:
        return
    machine, saved_on = saved_machine(parts)
    if "state" in parts and fingerprint(machine) != saved_on:
        raise ActionNotSupported(
            f"Snapshot {image.dir.name} holds the memory of a VM saved with other boot artifacts or "
            "machine arguments than this host's (another Shells version, or KVM against TCG); "
            "it can start only on a host like the one that took it."
        )
    unknown = set(parts) - {MACHINE, "ram", "state", *DISKS, *(f"{d}-base" for d in DISKS)}
    if unknown or not set(DISKS) <= set(parts):
        raise RuntimeFailure(f"a microvm snapshot's parts are not {sorted(parts)}")
    staging = image.dir.with_name(f".{image.dir.name}.fetch-{os.getpid()}-{os.urandom(4).hex()}")
    staging.mkdir(parents=True)
    used: list[str] = []
    try:
        for disk in DISKS:
            overlay = staging / f"{disk}.qcow2"
            await _decompress(parts[disk], overlay)
            await anyio.to_thread.run_sync(_require_standalone, overlay)
            if f"{disk}-base" in parts:
                base = await bases.ensure(parts[f"{disk}-base"])
                used.append(base.name)
                await anyio.to_thread.run_sync(
                    qemu_img, "rebase", "-u", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)
                )
        for name in ("ram", "state"):
            if name in parts:
                await _decompress(parts[name], staging / name)
        Image(staging).seal(machine)
        staging.rename(image.dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        for name in used:
            bases.pinned.remove(name)


def _require_standalone(disk: Path) -> None:
    """Refuse a qcow2 from the object store that would make QEMU open another file of this host (a
    backing file or an external data file): the only files it may read are the ones named here."""
    proc = subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", "qcow2", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeFailure(f"{disk.name} from the object store is not a qcow2 disk: {proc.stderr[-300:]}")
    info = json.loads(proc.stdout)
    specific = info.get("format-specific", {}).get("data", {})
    if "backing-filename" in info or "data-file" in specific or info.get("format") != "qcow2":
        raise RuntimeFailure(f"{disk.name} from the object store names another file; it is refused")
