"""Templates in a real btrfs pool: atomic publish and removal, host-cache export, ext4 export."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.domain.errors import TemplateExists, TemplateNotFound
from shells.domain.templates import TemplateKind, TemplateMeta
from shells.runtime import images
from shells.runtime.container.template_bits import TemplateBits
from shells.runtime.host.btrfs import BtrfsPool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop mounts, btrfs ioctls)")


@pytest.fixture(scope="module")
def tarball(workdir: Path) -> Path:
    """A hand-made rootfs: a Debian version file, a file of uid 1000 and a setuid binary."""
    src = workdir / "tpl-src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "debian_version").write_text("13.7\n")
    (src / "etc" / "ssl" / "certs").mkdir(parents=True)
    (src / "etc" / "ssl" / "certs" / "ca-certificates.crt").write_text(DEBIAN_CAS)
    (src / "home" / "user").mkdir(parents=True)
    (src / "home" / "user" / "notes").write_text("mine")
    os.chown(src / "home" / "user" / "notes", 1000, 1001)
    (src / "bin").mkdir()
    (src / "bin" / "su").write_text("#!/bin/sh\n")
    (src / "bin" / "su").chmod(0o4755)
    (src / "workspace").mkdir()
    out = workdir / "tpl.tar.zst"
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "-I", "zstd", "-C", str(src), "-cf", str(out), "."], check=True
    )
    return out


DEBIAN_CAS = "-----BEGIN CERTIFICATE-----\nDEBIAN\n-----END CERTIFICATE-----\n"
PEM = "-----BEGIN CERTIFICATE-----\nHOST{}\n-----END CERTIFICATE-----\n"


@pytest.fixture
def host_cas(tmp_path: Path) -> Path:
    """The host's local CA directory, empty unless a test puts certificates in it."""
    return tmp_path / "host-cas"


@pytest.fixture
def storage(pool: BtrfsPool, host_cas: Path) -> Iterator[TemplateBits]:
    store = TemplateBits(pool, host_cas)
    yield store
    store.remove_all()
    assert list(store.root.iterdir()) == []


def meta(name: str) -> TemplateMeta:
    return TemplateMeta(
        name, TemplateKind.SPEC, "base:1", "h" * 64, {"A": "1"}, "/workspace", {"tool": "1.0"}
    )


def test_an_imported_template_is_published_whole_measured_and_described(
    storage: TemplateBits, tarball: Path
) -> None:
    published = storage.import_tarball(tarball, meta("t:1"))
    assert storage.pool.is_readonly(storage.rootfs("t:1"))
    assert published.size_bytes == len("13.7\n") + len(DEBIAN_CAS) + len("mine") + len("#!/bin/sh\n")
    assert published.versions == {"debian": "13.7", "tool": "1.0"}  # read from the bits themselves
    assert published.created_at is not None and not published.has_workspace
    assert storage.meta("t:1") == published and [m.name for m in storage.all()] == ["t:1"]
    assert sorted(p.name for p in storage.root.iterdir()) == ["t:1"]  # no staging left
    with pytest.raises(TemplateExists):
        storage.import_tarball(tarball, meta("t:1"))
    assert sorted(p.name for p in storage.root.iterdir()) == ["t:1"]


def test_a_failed_staging_leaves_nothing_and_leftovers_are_swept(
    storage: TemplateBits, tarball: Path
) -> None:
    with pytest.raises(RuntimeError), storage.staging("broken:1") as staging:
        storage.pool.create_subvolume(staging / "rootfs")
        raise RuntimeError("interrupted")
    assert list(storage.root.iterdir()) == []
    # what a crash leaves: a staging dir with a subvolume, a dir without metadata, the old layout
    crashed = storage.root / ".x:1.new-abc"
    crashed.mkdir()
    storage.pool.create_subvolume(crashed / "rootfs")
    (storage.root / "half:1").mkdir()
    storage.pool.create_subvolume(storage.root / "base")
    storage.import_tarball(tarball, meta("kept:1"))
    storage.remove_leftovers()
    assert sorted(p.name for p in storage.root.iterdir()) == ["kept:1"]


def test_remove_is_idempotent_and_require_names_what_is_missing(storage: TemplateBits, tarball: Path) -> None:
    storage.import_tarball(tarball, meta("gone:1"))
    storage.remove("gone:1")
    storage.remove("gone:1")
    assert storage.meta("gone:1") is None and list(storage.root.iterdir()) == []
    with pytest.raises(TemplateNotFound, match="gone:1"):
        storage.require("gone:1")


def test_a_cached_export_round_trips_through_another_pool_layout(
    storage: TemplateBits, tarball: Path, workdir: Path
) -> None:
    storage.import_tarball(tarball, meta("src:1"))
    out = workdir / "cache" / "src-1-hhhh.tar.zst"
    storage.export_tarball("src:1", out)
    described = json.loads(out.with_name(out.name + ".json").read_text())
    assert described["name"] == "src:1" and described["versions"]["debian"] == "13.7"
    copy = storage.import_tarball(out, TemplateMeta.from_json({**described, "name": "copy:1"}))
    notes = storage.rootfs("copy:1") / "home" / "user" / "notes"
    assert (notes.stat().st_uid, notes.stat().st_gid) == (1000, 1001)
    assert (storage.rootfs("copy:1") / "bin" / "su").stat().st_mode & 0o7777 == 0o4755
    assert copy.content_hash == "h" * 64


def test_the_hosts_cas_are_trusted_in_the_pool_but_never_packed_for_the_cache(
    storage: TemplateBits, tarball: Path, workdir: Path, host_cas: Path
) -> None:
    host_cas.mkdir()
    (host_cas / "proxy.crt").write_text(PEM.format(1))
    storage.import_tarball(tarball, meta("ca:1"))
    bundle = storage.rootfs("ca:1") / images.CA_BUNDLE
    assert bundle.read_text() == DEBIAN_CAS + "\n" + PEM.format(1)
    local = storage.rootfs("ca:1") / "usr/local/share/ca-certificates"
    assert [p.read_text() for p in local.iterdir()] == [PEM.format(1)]

    out = workdir / "cache" / "ca-1-hhhh.tar.zst"
    storage.export_tarball("ca:1", out)
    listing = subprocess.run(
        ["tar", "-I", "zstd", "-tf", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "shells-host-" not in listing
    unpacked = workdir / "ca-unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-C", str(unpacked), "-xf", str(out)], check=True)
    assert (unpacked / images.CA_BUNDLE).read_text() == DEBIAN_CAS
    assert bundle.read_text() == DEBIAN_CAS + "\n" + PEM.format(1)  # the pool's template is unchanged

    # Another instance, after the host's CAs changed: the import trusts what the host trusts now.
    (host_cas / "proxy.crt").unlink()
    (host_cas / "other.crt").write_text(PEM.format(2))
    storage.import_tarball(out, meta("ca-copy:1"))
    copied = storage.rootfs("ca-copy:1") / images.CA_BUNDLE
    assert copied.read_text() == DEBIAN_CAS + "\n" + PEM.format(2)


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", request, str(image)], capture_output=True, text=True, check=True
    ).stdout


def test_ext4_export_passes_fsck_and_keeps_owners_modes_and_the_saved_workspace(
    storage: TemplateBits, tarball: Path, workdir: Path
) -> None:
    storage.import_tarball(tarball, meta("vm:1"))
    with storage.staging("ws:1") as staging:  # a saved template: rootfs plus its own /workspace
        storage.pool.snapshot(storage.rootfs("vm:1"), staging / "rootfs", readonly=True)
        storage.pool.create_subvolume(staging / "workspace")
        (staging / "workspace" / "data.txt").write_text("kept\n")
        storage.pool.set_readonly(staging / "workspace", True)
        storage.commit(staging, meta("ws:1"))
    for name in ("vm:1", "ws:1"):
        image = workdir / f"{name.replace(':', '-')}.ext4"
        storage.export_ext4(name, image)
        fsck = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True, check=False)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        notes = debugfs(image, "stat /home/user/notes")
        assert "User:  1000" in notes and "Group:  1001" in notes
        assert "Mode:  04755" in debugfs(image, "stat /bin/su")
    assert debugfs(workdir / "ws-1.ext4", "cat /workspace/data.txt") == "kept\n"
    assert (
        "File not found"
        in subprocess.run(
            ["debugfs", "-R", "stat /workspace/data.txt", str(workdir / "vm-1.ext4")],
            capture_output=True,
            text=True,
            check=False,
        ).stderr
    )
    assert sorted(p.name for p in storage.root.iterdir()) == ["vm:1", "ws:1"]  # the merged copy is gone
