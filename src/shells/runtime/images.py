"""Base rootfs templates: debootstrap once into a cached ``.tar.zst``, import into the btrfs pool.

A template is identified by the hash of its spec and of ``BUILDER_VERSION`` (bump it whenever the
build steps change), so a cached tarball is reused as long as both match. Tarballs keep numeric
owners and all xattrs (file capabilities such as ping's ``security.capability``); the files are
stored unshifted (owned by 0..65535) and shown shifted through idmapped mounts at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc
from shells.runtime.host.btrfs import BtrfsPool

BUILDER_VERSION = 1

DEFAULT_PACKAGES = ("python3", "ca-certificates", "procps", "curl", "git", "less")

HOSTS = """\
127.0.0.1\tlocalhost
127.0.1.1\tshells
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

_TRIM = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
)
"""Emptied (the directories stay): package lists, caches and documentation a sandbox never reads."""

_TAR_FLAGS = ["--numeric-owner", "--xattrs", "--xattrs-include=*"]


@dataclass(frozen=True)
class RootfsSpec:
    """What goes into a template. ``name`` only names the file; everything else is hashed."""

    name: str = "base"
    suite: str = "trixie"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"
    packages: tuple[str, ...] = DEFAULT_PACKAGES

    def content_hash(self) -> str:
        doc = {k: v for k, v in asdict(self).items() if k != "name"}
        doc["packages"] = sorted(self.packages)
        doc["builder"] = BUILDER_VERSION
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def tarball_name(self) -> str:
        return f"{self.name}-{self.content_hash()[:16]}.tar.zst"


def _run(step: str, argv: list[str], timeout: float = 1800) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"{step} timed out after {timeout:.0f} s ({' '.join(argv)})") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise RuntimeFailure(f"{step} failed with exit code {proc.returncode} ({' '.join(argv)}): {tail}")


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise RuntimeFailure(
            f"building a rootfs template needs {tool!r}; install it (apt-get install {tool})"
        )


def build_rootfs_tarball(cache_dir: Path, spec: RootfsSpec | None = None) -> Path:
    """Return ``<cache_dir>/<name>-<hash>.tar.zst``, building it with debootstrap if it is missing.

    The tarball appears atomically (temp file + rename); a half-built one is never visible.
    """
    spec = spec or RootfsSpec()
    cache_dir = Path(cache_dir)
    tarball = cache_dir / spec.tarball_name()
    if tarball.exists():
        return tarball
    for tool in ("debootstrap", "zstd", "tar"):
        _require(tool)
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".build-{spec.name}-"))
    try:
        rootfs = work / "rootfs"
        argv = ["debootstrap", f"--variant={spec.variant}"]
        if spec.packages:
            argv.append("--include=" + ",".join(spec.packages))
        argv += [spec.suite, str(rootfs), spec.mirror]
        _run(f"debootstrap of {spec.suite}", argv)
        _finish_rootfs(rootfs)
        partial = work / tarball.name
        _run(
            "packing the rootfs template",
            [
                "tar",
                *_TAR_FLAGS,
                "--sort=name",
                "-I",
                "zstd -T0 -10",
                "-C",
                str(rootfs),
                "-cf",
                str(partial),
                ".",
            ],
        )
        partial.rename(tarball)
    finally:
        _remove_build_dir(work)
    return tarball


def _finish_rootfs(rootfs: Path) -> None:
    """Trim what sandboxes never need and add what Shells expects in every template."""
    for rel in _TRIM:
        target = rootfs / rel
        if not target.is_dir():
            continue
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for rel in (".shells", "workspace"):
        (rootfs / rel).mkdir(exist_ok=True)
        (rootfs / rel).chmod(0o755)
    (rootfs / "etc/hostname").write_text("shells\n")
    (rootfs / "etc/hosts").write_text(HOSTS)


def _remove_build_dir(work: Path) -> None:
    """rm -rf, after unmounting anything a failed debootstrap left mounted inside (proc, sys)."""
    for mount_point in _libc.mounts_below(work):
        try:
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        except OSError as exc:
            raise RuntimeFailure(
                f"cleaning up the template build: unmount {mount_point}: {exc.strerror}"
            ) from exc
    shutil.rmtree(work, ignore_errors=True)


def import_rootfs(pool: BtrfsPool, tarball: Path, dest: Path) -> None:
    """Unpack ``tarball`` into the read-only subvolume ``dest`` in ``pool`` (idempotent).

    Extraction goes into a temporary writable subvolume next to ``dest``, which is then snapshotted
    read-only to ``dest``: ``dest`` either does not exist or is complete.
    """
    dest = Path(dest)
    if pool.is_subvolume(dest):
        if pool.is_readonly(dest):
            return
        raise RuntimeFailure(f"importing {tarball.name}: {dest} exists and is a writable subvolume")
    if dest.exists():
        raise RuntimeFailure(f"importing {tarball.name}: {dest} exists and is not a subvolume")
    scratch = dest.with_name(f".{dest.name}.import-{os.getpid()}-{os.urandom(4).hex()}")
    pool.create_subvolume(scratch)
    try:
        _run(
            f"unpacking {tarball.name}",
            [
                "tar",
                *_TAR_FLAGS,
                "--same-permissions",
                "-I",
                "zstd -T0",
                "-C",
                str(scratch),
                "-xf",
                str(tarball),
            ],
        )
        pool.snapshot(scratch, dest, readonly=True)
    finally:
        pool.delete_subvolume(scratch)
