"""Image references, platforms, image defaults and the layer applier on a scratch directory."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from shells.domain.errors import ImageRejected, InvalidImageReference
from shells.domain.oci import (
    DOCKER_HUB,
    ImageRef,
    Platform,
    image_defaults,
    parse_image_ref,
    pick_platform,
    user_ids,
)
from shells.runtime.oci.blobs import BlobStore
from shells.runtime.oci.layers import Budget, apply_layer
from tests.support.oci_registry import Entry, dir_entry, gzip_layer
from tests.support.root import needs_root

AS_OWNERS = needs_root("a layer is applied with its entries' owners and device nodes")

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("busybox", ImageRef(DOCKER_HUB, "library/busybox", "latest")),
        ("python:3.12-slim", ImageRef(DOCKER_HUB, "library/python", "3.12-slim")),
        ("ghcr.io/org/app:1", ImageRef("ghcr.io", "org/app", "1")),
        ("localhost:5000/a/b", ImageRef("localhost:5000", "a/b", "latest")),
        (f"127.0.0.1:5000/x@{DIGEST}", ImageRef("127.0.0.1:5000", "x", None, DIGEST)),
        (f"team/app:2@{DIGEST}", ImageRef(DOCKER_HUB, "team/app", "2", DIGEST)),
    ],
)
def test_references_parse_as_docker_reads_them(text: str, ref: ImageRef) -> None:
    assert parse_image_ref(text) == ref
    assert parse_image_ref(text).reference == (ref.digest or ref.tag)


@pytest.mark.parametrize("text", ["", "UPPER/case", "a:b:c", "x@sha256:short", "/abs", "a//b", 3])
def test_bad_references_are_typed_errors_naming_the_field(text: object) -> None:
    with pytest.raises(InvalidImageReference) as exc:
        parse_image_ref(text, "image")
    assert exc.value.details == {"field": "image"}


def test_an_index_gives_the_host_platform_or_says_what_it_offers() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
        ]
    }
    assert pick_platform(index, Platform("linux", "amd64"))["digest"] == "sha256:amd"
    with pytest.raises(ImageRejected, match="offers linux/arm64, linux/amd64"):
        pick_platform(index, Platform("linux", "s390x"))


def test_image_defaults_come_from_the_config() -> None:
    config = {"config": {"Env": ["A=1", "B=x=y", "junk"], "WorkingDir": "/srv", "User": "app:app",
                         "Entrypoint": ["/init"], "Cmd": ["run"], "Labels": {"k": "v"}}}  # fmt: skip
    d = image_defaults(config)
    assert (d.env, d.workdir, d.user, d.entrypoint, d.cmd, d.labels) == (
        {"A": "1", "B": "x=y"}, "/srv", "app:app", ("/init",), ("run",), {"k": "v"},
    )  # fmt: skip
    assert image_defaults({}).workdir is None


def apply(tmp: Path, root: Path, *layers: list[Entry]) -> None:
    for i, entries in enumerate(layers, start=1):
        packed, _ = gzip_layer(tmp, entries)
        apply_layer(packed.path, "gzip", root, f"layer {i}/{len(layers)}", Budget())


@AS_OWNERS
def test_whiteouts_opaque_dirs_links_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    apply(
        tmp_path,
        root,
        [
            dir_entry("d"),
            Entry("d/a", b"a"),
            Entry("d/b", b"b"),
            dir_entry("o"),
            Entry("o/old", b"o"),
            Entry("d/h", kind=tarfile.LNKTYPE, link="d/a"),
            Entry("d/s", kind=tarfile.SYMTYPE, link="a"),
            Entry("d/x", b"x", 0o4750, xattrs=(("user.k", "v"),)),
        ],
        [Entry("d/.wh.b"), Entry("o/.wh..wh..opq"), Entry("o/new", b"n")],
    )
    assert sorted(p.name for p in (root / "d").iterdir()) == ["a", "h", "s", "x"]
    assert [p.name for p in (root / "o").iterdir()] == ["new"]
    assert (root / "d/a").stat().st_nlink == 2 and (root / "d/s").readlink() == Path("a")
    assert (root / "d/x").stat().st_mode & 0o7777 == 0o4750
    assert os.getxattr(root / "d/x", "user.k") == b"v"


@AS_OWNERS
def test_links_are_resolved_inside_the_tree_never_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    up = [
        Entry("abs", kind=tarfile.SYMTYPE, link="/"),
        Entry("rel", kind=tarfile.SYMTYPE, link="../../../.."),
    ]
    apply(tmp_path, root, up, [Entry("abs/f", b"1"), Entry("rel/g", b"2")])
    assert (root / "f").read_bytes() == b"1" and (root / "g").read_bytes() == b"2"
    assert not Path("/f").exists() and not Path("/g").exists()


@AS_OWNERS
@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (Entry("../x", b""), "climbs out"),
        (Entry("/x", b""), "absolute path"),
        (Entry("dev/null", kind=tarfile.CHRTYPE), "device node"),
        (Entry("x", b"", uid=65536), "outside 0..65535"),
        (Entry("h", kind=tarfile.LNKTYPE, link="missing"), "not there"),
    ],
)
def test_unsafe_entries_are_refused_naming_the_layer_and_the_entry(
    tmp_path: Path, entry: Entry, why: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ImageRejected, match=why) as exc:
        apply(tmp_path, root, [Entry("ok", b"")], [entry])
    assert exc.value.details == {"layer": "layer 2/2", "entry": entry.name}
    assert not (tmp_path / "x").exists()


def test_the_unpacked_size_is_capped_across_layers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    packed, _ = gzip_layer(tmp_path, [Entry("big", b"x" * 100)])
    with pytest.raises(ImageRejected, match="unpacked bytes"):
        apply_layer(packed.path, "gzip", root, "layer 1/1", Budget(bytes_left=50))


def test_partial_blobs_left_by_a_crash_are_swept_once_old(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put_bytes(b"kept")
    old, fresh = tmp_path / "sha256" / ".abc.1-old", tmp_path / "sha256" / ".abc.2-fresh"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (0, 0))
    store.sweep_partials()
    assert store.has(digest) and fresh.exists() and not old.exists()


def test_an_images_user_is_found_in_its_own_passwd_and_group() -> None:
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbad:x:no:no::/:/\n"
    group = "root:x:0:\nstaff:x:50:app\n"
    assert user_ids("app", passwd, group) == (1000, 1001)
    assert user_ids("app:staff", passwd, group) == (1000, 50)
    assert user_ids("4242", passwd, group) == (4242, 0)
    assert user_ids("1000:7", passwd, group) == (1000, 7)
    assert user_ids("ghost", passwd, group) is None and user_ids("app:ghosts", passwd, group) is None
    assert user_ids("bad", passwd, group) is None
