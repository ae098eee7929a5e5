"""Template build (debootstrap) and import into a throwaway btrfs pool (root and network needed)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime import images
from shells.runtime.host import _libc
from shells.runtime.host.btrfs import BtrfsPool
from shells.runtime.images import RootfsSpec
from shells.runtime.templates import catalog

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (debootstrap, loop mounts)")


@pytest.fixture
def small_tarball(workdir: Path) -> Path:
    """A hand-made rootfs: a file of uid 1000, a setuid binary and a file with an xattr."""
    src = workdir / "small-src"
    (src / "home" / "user").mkdir(parents=True, exist_ok=True)
    (src / "home" / "user" / "notes").write_text("mine")
    os.chown(src / "home" / "user" / "notes", 1000, 1001)
    (src / "bin").mkdir(exist_ok=True)
    (src / "bin" / "su").write_text("#!/bin/sh\n")
    (src / "bin" / "su").chmod(0o4755)
    os.setxattr(src / "bin" / "su", "user.shells", b"kept")
    tarball = workdir / "small.tar.zst"
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd", "-C", str(src), "-cf",
         str(tarball), "."],
        check=True,
    )  # fmt: skip
    return tarball


def test_the_content_hash_follows_the_spec_but_not_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    base = RootfsSpec()
    assert base.packages == ("python3", "ca-certificates", "procps", "curl", "git", "less")
    assert (base.suite, base.variant, base.mirror) == ("trixie", "minbase", "http://deb.debian.org/debian")
    assert RootfsSpec(name="other").content_hash() == base.content_hash()
    assert RootfsSpec(
        packages=("less", "git", "curl", "procps", "ca-certificates", "python3")
    ).content_hash() == (base.content_hash())
    assert RootfsSpec(packages=("python3",)).content_hash() != base.content_hash()
    assert RootfsSpec(suite="bookworm").content_hash() != base.content_hash()
    before = base.content_hash()
    monkeypatch.setattr(images, "BUILDER_VERSION", images.BUILDER_VERSION + 1)
    assert base.content_hash() != before
    assert base.tarball_name() == f"base-{base.content_hash()[:16]}.tar.zst"


def test_an_existing_tarball_is_reused_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = RootfsSpec(name="cached")
    (tmp_path / spec.tarball_name()).write_bytes(b"pretend")
    monkeypatch.setattr(images, "_run", lambda *a, **k: pytest.fail("must not build"))
    assert images.build_rootfs_tarball(tmp_path, spec) == tmp_path / spec.tarball_name()


def test_import_makes_a_readonly_subvolume_keeping_owners_modes_and_xattrs(
    pool: BtrfsPool, small_tarball: Path
) -> None:
    dest = pool.mount_dir / "small"
    images.import_rootfs(pool, small_tarball, dest)
    try:
        assert pool.is_subvolume(dest) and pool.is_readonly(dest)
        st = (dest / "home" / "user" / "notes").stat()
        assert (st.st_uid, st.st_gid) == (1000, 1001)
        assert (dest / "bin" / "su").stat().st_mode & 0o7777 == 0o4755
        assert os.getxattr(dest / "bin" / "su", "user.shells") == b"kept"
        assert sorted(p.name for p in pool.mount_dir.iterdir()) == ["small"]  # the scratch subvolume is gone
    finally:
        pool.delete_subvolume(dest)


def test_import_leaves_an_existing_readonly_template_alone(pool: BtrfsPool, small_tarball: Path) -> None:
    dest = pool.mount_dir / "again"
    images.import_rootfs(pool, small_tarball, dest)
    try:
        stamp = dest.stat().st_ctime_ns
        images.import_rootfs(pool, small_tarball, dest)
        assert dest.stat().st_ctime_ns == stamp
    finally:
        pool.delete_subvolume(dest)


def test_import_refuses_a_writable_destination_and_cleans_up_after_a_bad_tarball(
    pool: BtrfsPool, workdir: Path
) -> None:
    pool.create_subvolume(pool.mount_dir / "writable")
    try:
        with pytest.raises(RuntimeFailure, match="writable subvolume"):
            images.import_rootfs(pool, workdir / "whatever.tar.zst", pool.mount_dir / "writable")
    finally:
        pool.delete_subvolume(pool.mount_dir / "writable")
    broken = workdir / "broken.tar.zst"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(RuntimeFailure, match=r"unpacking broken\.tar\.zst"):
        images.import_rootfs(pool, broken, pool.mount_dir / "broken")
    assert list(pool.mount_dir.iterdir()) == []


@pytest.mark.timeout(900)
def test_build_rootfs_tarball_debootstraps_a_template_once_and_imports_it(
    pool: BtrfsPool, workdir: Path
) -> None:
    """SLOW (~40-90 s, downloads from deb.debian.org): a real minbase debootstrap with no extra packages.

    Set SHELLS_TEST_CACHE_DIR to keep the tarball between runs; the build is then skipped.
    """
    cache = Path(os.environ.get("SHELLS_TEST_CACHE_DIR") or workdir / "cache")
    spec = RootfsSpec(name="test-minbase", packages=())

    start = time.perf_counter()
    tarball = images.build_rootfs_tarball(cache, spec)
    built = time.perf_counter() - start
    assert tarball == cache / spec.tarball_name()
    assert not [p for p in cache.iterdir() if p.name.startswith(".build-")]
    stamp = tarball.stat().st_mtime_ns
    assert images.build_rootfs_tarball(cache, spec) == tarball
    assert tarball.stat().st_mtime_ns == stamp

    dest = pool.mount_dir / "minbase"
    start = time.perf_counter()
    images.import_rootfs(pool, tarball, dest)
    imported = time.perf_counter() - start
    try:
        print(
            f"\ntemplate build {built:.1f} s, tarball {tarball.stat().st_size / 1e6:.1f} MB, "
            f"import {imported:.2f} s"
        )
        assert (dest / "etc" / "hostname").read_text() == "shells\n"
        assert "127.0.1.1\tshells" in (dest / "etc" / "hosts").read_text()
        for rel in (".shells", "workspace"):
            assert (dest / rel).is_dir() and (dest / rel).stat().st_mode & 0o777 == 0o755
            assert list((dest / rel).iterdir()) == []
        assert list((dest / "usr" / "share" / "doc").iterdir()) == []
        assert not list((dest / "var" / "lib" / "apt" / "lists").glob("*_Packages"))
        assert (dest / "usr" / "bin" / "dpkg").exists()
        assert "VERSION_CODENAME=trixie" in (dest / "etc" / "os-release").read_text()
        assert _libc.mounts_below(dest) == []
    finally:
        pool.delete_subvolume(dest)


def test_no_template_identity_depends_on_the_hosts_cas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # where older versions read the host's CAs from, into base:1's identity and so into every one
    monkeypatch.setattr(images, "HOST_LOCAL_CAS", tmp_path / "cas", raising=False)
    (tmp_path / "cas").mkdir()
    catalog.builtins.cache_clear()
    before = {name: b.content_hash for name, b in catalog.builtins().items()}
    (tmp_path / "cas" / "unrelated.crt").write_text(PEM)
    catalog.builtins.cache_clear()
    assert {name: b.content_hash for name, b in catalog.builtins().items()} == before
    assert RootfsSpec().content_hash() == before["base:1"]


def test_the_hosts_cas_are_trusted_and_untrusted_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc/ssl/certs").mkdir(parents=True)
    bundle = root / images.CA_BUNDLE
    bundle.write_text("DEBIAN CAS\n")
    images.trust_host_cas(root, (PEM,))
    assert (root / "usr/local/share/ca-certificates/shells-host-0.crt").read_text() == PEM
    assert bundle.read_text() == "DEBIAN CAS\n\n" + PEM
    # as update-ca-certificates would rebuild it, with the host's file among the others
    bundle.write_text("DEBIAN CAS\n" + PEM + "LOCAL CA\n")
    images.untrust_host_cas(root)
    assert bundle.read_text() == "DEBIAN CAS\nLOCAL CA\n"
    assert list((root / "usr/local/share/ca-certificates").iterdir()) == []

    hostile = tmp_path / "hostile"
    (hostile / "etc/ssl").mkdir(parents=True)
    outside = tmp_path / "host-file"
    outside.write_text("HOST\n")
    (hostile / "etc/ssl/certs").symlink_to(tmp_path)  # a build shell's link to somewhere on the host
    (tmp_path / "ca-certificates.crt").symlink_to(outside)
    (hostile / "usr/local/share").mkdir(parents=True)
    (hostile / "usr/local/share/ca-certificates").symlink_to(tmp_path)
    images.trust_host_cas(hostile, (PEM,))
    images.untrust_host_cas(hostile)
    assert outside.read_text() == "HOST\n"
    assert not list(tmp_path.glob("shells-host-*"))
