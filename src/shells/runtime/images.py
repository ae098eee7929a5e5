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
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc
from shells.runtime.host.btrfs import BtrfsPool

BUILDER_VERSION = 2

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

HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def host_local_cas() -> tuple[str, ...]:
    """The CA certificates this host trusts locally (Debian's place for them), as PEM text.

    Templates trust them too, so downloads work where the host's own do, e.g. behind a
    TLS-inspecting egress proxy whose CA the administrator added to the host."""
    if not HOST_LOCAL_CAS.is_dir():
        return ()
    return tuple(p.read_text(encoding="utf-8") for p in sorted(HOST_LOCAL_CAS.rglob("*.crt")))


@dataclass(frozen=True)
class RootfsSpec:
    """What goes into a template. ``name`` only names the file; everything else is hashed."""

    name: str = "base"
    suite: str = "trixie"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    local_cas: tuple[str, ...] = field(default_factory=host_local_cas)

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
        debs = cache_dir / "debootstrap"  # downloaded .debs, reused by the next build on this host
        debs.mkdir(exist_ok=True)
        argv = ["debootstrap", f"--variant={spec.variant}", f"--cache-dir={debs.resolve()}"]
        if spec.packages:
            argv.append("--include=" + ",".join(spec.packages))
        argv += [spec.suite, str(rootfs), spec.mirror]
        _run(f"debootstrap of {spec.suite}", argv)
        _finish_rootfs(rootfs, spec.local_cas)
        pack_rootfs(rootfs, tarball, level=10)
    finally:
        _remove_build_dir(work)
    return tarball


def pack_rootfs(rootfs: Path, tarball: Path, level: int = 3) -> None:
    """Pack the tree ``rootfs`` into ``tarball`` (zstd), atomically: a partial file is never visible."""
    _require("zstd")
    partial = tarball.with_name(f".{tarball.name}.partial-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        _run(
            f"packing {tarball.name}",
            ["tar", *_TAR_FLAGS, "--sort=name", "-I", f"zstd -T0 -{level}", "-C", str(rootfs),
             "-cf", str(partial), "."],
        )  # fmt: skip
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)


def tree_usage(root: Path) -> tuple[int, int]:
    """(apparent bytes of the regular files, number of inodes) below ``root``, not crossing mounts."""
    size, inodes = 0, 1
    dev = root.lstat().st_dev
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                inodes += 1
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if st.st_dev == dev:
                        pending.append(entry.path)
                elif stat.S_ISREG(st.st_mode):
                    size += st.st_size
    return size, inodes


def make_ext4(tree: Path, image: Path) -> None:
    """Write the tree ``tree`` into a new ext4 image file ``image`` (``mkfs.ext4 -d``), atomically.

    Owners, modes, xattrs and hard links are kept; the image has ~25 % free space and spare inodes.
    """
    _require("mkfs.ext4")
    size, inodes = tree_usage(tree)
    size_mib = (size * 5 // 4 + inodes * 4096) // (1024 * 1024) + 64
    partial = image.with_name(f".{image.name}.partial-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        _run(
            f"making the ext4 image {image.name}",
            ["mkfs.ext4", "-q", "-F", "-L", "shells-root", "-N", str(inodes * 5 // 4 + 1024),
             "-E", "root_owner=0:0", "-d", str(tree), str(partial), f"{size_mib}M"],
        )  # fmt: skip
        partial.rename(image)
    finally:
        partial.unlink(missing_ok=True)


def _finish_rootfs(rootfs: Path, local_cas: tuple[str, ...] = ()) -> None:
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
    local = rootfs / "usr/local/share/ca-certificates"
    for i, pem in enumerate(local_cas):  # found by update-ca-certificates whenever it runs later
        local.mkdir(parents=True, exist_ok=True)
        (local / f"shells-host-{i}.crt").write_text(pem, encoding="utf-8")
    bundle = rootfs / "etc/ssl/certs/ca-certificates.crt"
    if local_cas and bundle.exists():  # what it would do now, without running anything of the rootfs
        with bundle.open("a", encoding="utf-8") as out:
            out.writelines("\n" + pem.strip() + "\n" for pem in local_cas)


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
