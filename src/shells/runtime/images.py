"""Base rootfs templates: debootstrap once into a cached ``.tar.zst``, import into the btrfs pool.

A template is identified by the hash of its spec and of ``BUILDER_VERSION`` (bump it whenever the
build steps change), so a cached tarball is reused as long as both match. Nothing of the host is in
the identity or in a cached tarball: the CA certificates the host trusts locally are added to a
template when it is imported into an instance's pool and taken out when it is packed for the cache
(``trust_host_cas``, ``untrust_host_cas``), so a change of them never makes a template rebuild.
Tarballs keep numeric owners and all xattrs (file capabilities such as ping's
``security.capability``); the files are stored unshifted (owned by 0..65535) and shown shifted
through idmapped mounts at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass
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

HOST_CA_PREFIX = "shells-host-"
"""Names of the host's CA files in a template's ``usr/local/share/ca-certificates``."""
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def host_local_cas(directory: Path) -> tuple[str, ...]:
    """The CA certificates this host trusts locally (``directory``: Debian's place for them), as PEM
    text. Templates trust them too, so downloads work where the host's own do, e.g. behind a
    TLS-inspecting egress proxy whose CA the administrator added to the host."""
    if not directory.is_dir():
        return ()
    return tuple(p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*.crt")))


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
        debs = cache_dir / "debootstrap"  # downloaded .debs, reused by the next build on this host
        debs.mkdir(exist_ok=True)
        argv = ["debootstrap", f"--variant={spec.variant}", f"--cache-dir={debs.resolve()}"]
        if spec.packages:
            argv.append("--include=" + ",".join(spec.packages))
        argv += [spec.suite, str(rootfs), spec.mirror]
        _run(f"debootstrap of {spec.suite}", argv)
        _finish_rootfs(rootfs)
        pack_rootfs(rootfs, tarball, level=10)
    finally:
        _remove_build_dir(work)
    return tarball


def pack_command(rootfs: Path, tarball: Path, level: int = 3) -> list[str]:
    """The tar (with zstd) that packs the tree ``rootfs`` into ``tarball``."""
    return ["tar", *_TAR_FLAGS, "--sort=name", "-I", f"zstd -T0 -{level}", "-C", str(rootfs),
            "-cf", str(tarball), "."]  # fmt: skip


def unpack_command(tarball: Path, dest: Path) -> list[str]:
    """The tar that unpacks a file made by ``pack_command`` into the directory ``dest``."""
    return ["tar", *_TAR_FLAGS, "--same-permissions", "-I", "zstd -T0", "-C", str(dest), "-xf", str(tarball)]


def pack_rootfs(rootfs: Path, tarball: Path, level: int = 3) -> None:
    """Pack the tree ``rootfs`` into ``tarball`` (zstd), atomically: a partial file is never visible."""
    _require("zstd")
    partial = tarball.with_name(f".{tarball.name}.partial-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        _run(f"packing {tarball.name}", pack_command(rootfs, partial, level))
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


def _inside(rootfs: Path, rel: str) -> Path | None:
    """``rootfs/rel`` if no component of it below ``rootfs`` is a symbolic link (else None): a
    template's files were made by build shells, and the host follows none of their links."""
    path = rootfs
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            return None
    return path


def trust_host_cas(rootfs: Path, pems: tuple[str, ...]) -> None:
    """Make the unpacked template ``rootfs`` trust ``pems`` (the host's local CAs) as Debian's
    ``update-ca-certificates`` would: one file each in ``/usr/local/share/ca-certificates`` (found
    again whenever it runs later) and appended to the bundle now, without running anything of the
    rootfs. Only for a tree no shell can reach (an import's scratch subvolume)."""
    local = _inside(rootfs, "usr/local/share/ca-certificates")
    bundle = _inside(rootfs, CA_BUNDLE)
    if not pems or local is None:
        return
    local.mkdir(parents=True, exist_ok=True)
    for i, pem in enumerate(pems):
        (local / f"{HOST_CA_PREFIX}{i}.crt").write_text(pem, encoding="utf-8")
    if bundle is not None and bundle.is_file():
        with bundle.open("a", encoding="utf-8") as out:
            out.writelines("\n" + pem.strip() + "\n" for pem in pems)


def untrust_host_cas(rootfs: Path) -> None:
    """Undo ``trust_host_cas`` on ``rootfs`` (whichever CAs it added then), before a template is
    packed for the host-wide cache. Only for a tree no shell can reach."""
    local = _inside(rootfs, "usr/local/share/ca-certificates")
    if local is None or not local.is_dir():
        return
    added = sorted(local.glob(f"{HOST_CA_PREFIX}*.crt"))
    pems = [p.read_text(encoding="utf-8").strip() for p in added if not p.is_symlink()]
    bundle = _inside(rootfs, CA_BUNDLE)
    if pems and bundle is not None and bundle.is_file():
        text = bundle.read_text(encoding="utf-8")
        for pem in pems:  # appended by trust_host_cas, or where update-ca-certificates put it
            block = "\n\n" + pem + "\n" if "\n\n" + pem + "\n" in text else "\n" + pem + "\n"
            text = text.replace(block, "\n", 1)
        bundle.write_text(text, encoding="utf-8")
    for path in added:
        path.unlink()


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


def import_rootfs(pool: BtrfsPool, tarball: Path, dest: Path, local_cas: tuple[str, ...] = ()) -> None:
    """Unpack ``tarball`` into the read-only subvolume ``dest`` in ``pool`` (idempotent), trusting
    ``local_cas`` (see ``trust_host_cas``).

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
        _run(f"unpacking {tarball.name}", unpack_command(tarball, scratch))
        trust_host_cas(scratch, local_cas)
        pool.snapshot(scratch, dest, readonly=True)
    finally:
        pool.delete_subvolume(scratch)
