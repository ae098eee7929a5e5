"""A microvm snapshot image as parts for the object store and back (``runtime/microvm/portable.py``),
on real qcow2 chains made with qemu-img and written with qemu-io (no VM): the disks a receiver
rebuilds read exactly what the snapshot's did, bases are shared by digest and collected when unused,
and a qcow2 that names another file of the host is refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from shells.domain.errors import ActionNotSupported, RuntimeFailure
from shells.objects.store import file_sha256
from shells.runtime.microvm import portable
from shells.runtime.microvm.images import Image, overlay
from shells.runtime.microvm.qemu import Machine

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-img", "qemu-io", "zstd")), reason="needs qemu-utils and zstd"
)
MACHINE = Machine(vcpus=1, memory_mib=16, accel="tcg")


def write(disk: Path, offset: int, byte: int, length: int = 65536) -> None:
    cmd = f"write -P {byte} {offset} {length}"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(disk)], check=True, capture_output=True)


def same(a: Path, b: Path) -> bool:
    proc = subprocess.run(["qemu-img", "compare", str(a), str(b)], check=False, capture_output=True)
    return proc.returncode == 0


def snapshot_image(root: Path) -> Image:
    """A template image (raw base + qcow2 overlay with the pre-boot's writes) and a snapshot of a
    shell made from it (an overlay of the shell's writes), with RAM and device state."""
    template = root / "template"
    template.mkdir(parents=True)
    for disk in ("root", "workspace"):
        raw = template / f"{disk}.raw"
        raw.write_bytes(b"")
        with raw.open("r+b") as f:
            f.truncate(8 << 20)
        overlay(raw, template / f"{disk}.qcow2", "raw")
        write(template / f"{disk}.qcow2", 0, 0x11 if disk == "root" else 0x33)
    image = Image(root / "images" / "snap_1")
    image.dir.mkdir(parents=True)
    for disk in ("root", "workspace"):
        overlay(template / f"{disk}.qcow2", image.dir / f"{disk}.qcow2", relative=False)
        write(image.dir / f"{disk}.qcow2", 1 << 20, 0x22)
    image.ram.write_bytes(b"\x00" * (1 << 20) + b"ram")
    image.state.write_bytes(b"devices")
    image.seal(MACHINE)
    return image


def test_a_snapshot_comes_back_elsewhere_reading_the_same_bytes(tmp_path: Path) -> None:
    image = snapshot_image(tmp_path / "a")
    out = tmp_path / "out"
    out.mkdir()
    exporter = portable.Bases(tmp_path / "a" / "bases")
    parts = anyio.run(portable.export, image, out, "fp", exporter)
    assert set(parts) == {"root", "root-base", "workspace", "workspace-base", "ram", "state", "machine"}

    bases = portable.Bases(tmp_path / "b" / "bases")
    copy = Image(tmp_path / "b" / "images" / "snap_1")
    anyio.run(portable.import_into, parts, copy, bases, lambda m: "fp")
    assert copy.complete and copy.machine() == MACHINE
    for disk in ("root.qcow2", "workspace.qcow2"):
        assert same(image.dir / disk, copy.dir / disk)
    assert copy.ram.read_bytes() == image.ram.read_bytes() and copy.state.read_bytes() == b"devices"
    assert len(list(bases.dir.iterdir())) == 2
    assert bases.pinned == [] and not list(copy.dir.parent.glob(".*"))

    # another export of the same chain: its base packed once here, and the same bytes anywhere
    assert len(list(exporter.dir.glob("*.zst"))) == 2
    for packer in (exporter, portable.Bases(tmp_path / "elsewhere")):
        again = tmp_path / f"again-{packer.dir.name}"
        again.mkdir()
        base = anyio.run(portable.export, image, again, "fp", packer)["root-base"]
        assert file_sha256(base) == file_sha256(parts["root-base"])
    assert exporter.unused([image.dir]) == []
    assert len(exporter.unused([])) == 2  # no disk reads those chains any more
    assert bases.unused([copy.dir]) == []
    shutil.rmtree(copy.dir)
    assert len(bases.unused([copy.dir.parent])) == 2


def test_a_state_saved_on_another_kind_of_machine_is_refused(tmp_path: Path) -> None:
    image = snapshot_image(tmp_path / "a")
    out = tmp_path / "out"
    out.mkdir()
    parts = anyio.run(portable.export, image, out, "fp-of-a", portable.Bases(tmp_path / "a" / "bases"))
    copy = Image(tmp_path / "b" / "images" / "snap_1")
    with pytest.raises(ActionNotSupported, match="other boot artifacts"):
        anyio.run(portable.import_into, parts, copy, portable.Bases(tmp_path / "b" / "bases"), lambda m: "b")
    assert not copy.dir.parent.exists() or not list(copy.dir.parent.iterdir())


@pytest.mark.parametrize("option", ["backing", "data_file"])
def test_a_qcow2_that_names_a_host_file_is_refused(tmp_path: Path, option: str) -> None:
    image = snapshot_image(tmp_path / "a")
    out = tmp_path / "out"
    out.mkdir()
    parts = anyio.run(portable.export, image, out, "fp", portable.Bases(tmp_path / "a" / "bases"))
    evil = tmp_path / "evil.qcow2"
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret".ljust(65536, b"\0"))
    if option == "backing":
        overlay(secret, evil, "raw")
    else:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on",
             str(evil), "64K"],
            check=True,
        )  # fmt: skip
    subprocess.run(["zstd", "-q", "-f", str(evil), "-o", str(parts["workspace"])], check=True)
    copy = Image(tmp_path / "b" / "images" / "snap_1")
    with pytest.raises(RuntimeFailure, match="names another file"):
        anyio.run(portable.import_into, parts, copy, portable.Bases(tmp_path / "b" / "bases"), lambda m: "fp")
    assert not copy.complete and not list(copy.dir.parent.glob(".*"))
