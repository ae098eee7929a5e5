"""A snapshot or a template of the btrfs pool as portable files, and back: what the object store
keeps of it.

Both are a directory of read-only subvolumes (``rootfs`` and ``workspace`` for a container
snapshot or a template, ``workspace`` alone for a wasm snapshot). Each goes out as one
``<name>.tar.zst`` (numeric owners, extended attributes: the same packing as the cached templates)
and comes back as a read-only subvolume again. A snapshot lands in a hidden directory beside its
place and is renamed into place when every part is in (a template the same way, through the
template store's staging): either complete or absent."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import anyio

from ..domain.errors import RuntimeFailure
from .host.btrfs import BtrfsPool
from .images import import_rootfs, pack_command

SUFFIX = ".tar.zst"
PARTS = ("rootfs", "workspace")


async def pack(pool: BtrfsPool, snapshot: Path, dest: Path) -> dict[str, Path]:
    """Each subvolume of ``snapshot`` as ``dest/<name>.tar.zst``: part name → file. Packed at the
    lowest CPU priority: nobody waits for it, and requests must not wait behind it."""
    if not snapshot.is_dir():
        raise RuntimeFailure(f"snapshot {snapshot.name} is not on this host")
    parts: dict[str, Path] = {}
    for name in PARTS:
        if pool.is_subvolume(snapshot / name):
            parts[name] = dest / f"{name}{SUFFIX}"
            argv = ["nice", "-n", "19", *pack_command(snapshot / name, parts[name])]
            try:  # a process of ours, not a thread: a server that stops kills it, and the pool is free
                await anyio.run_process(argv, check=True)
            except subprocess.CalledProcessError as exc:
                raise RuntimeFailure(
                    f"packing {name} of {snapshot.name} failed: {exc.stderr[-500:]!r}"
                ) from None
    return parts


async def unpack(pool: BtrfsPool, parts: Mapping[str, Path], snapshot: Path) -> None:
    """Make ``snapshot`` from files made by ``pack`` (nothing if it is already there)."""
    if snapshot.exists():
        return
    staging = snapshot.with_name(f".{snapshot.name}.fetch-{os.getpid()}-{os.urandom(4).hex()}")
    staging.mkdir(parents=True)
    try:
        await anyio.to_thread.run_sync(unpack_into, pool, parts, staging)
        staging.rename(snapshot)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove, pool, staging)
        raise


def unpack_into(pool: BtrfsPool, parts: Mapping[str, Path], directory: Path) -> None:
    """Each file made by ``pack`` as the read-only subvolume ``directory/<part>`` (blocking)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise RuntimeFailure(f"no part {sorted(unknown)} is kept in the object store")
    for name, tarball in parts.items():
        import_rootfs(pool, tarball, directory / name)


def _remove(pool: BtrfsPool, directory: Path) -> None:
    for name in PARTS:
        if pool.is_subvolume(directory / name):
            pool.delete_subvolume(directory / name)
    shutil.rmtree(directory, ignore_errors=True)
