"""Splitting guest RAM out of a QEMU migration stream (``runtime/microvm/ramsplit.py``), on streams
built here in the format QEMU 7.2 writes; the real ones are exercised by the microvm e2e tests (every
fork and every first resume goes through it)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from shells.runtime.microvm.ramsplit import (
    FLAG_CONTINUE,
    FLAG_EOS,
    FLAG_MEM_SIZE,
    FLAG_PAGE,
    FLAG_ZERO,
    PAGE_SIZE,
    Unsupported,
    split_ram,
)

RAM_PAGES = 8
ROM = b"pc.rom"


def be32(n: int) -> bytes:
    return struct.pack(">I", n)


def be64(n: int) -> bytes:
    return struct.pack(">Q", n)


def named(block: bytes) -> bytes:
    return bytes([len(block)]) + block


def record(address: int, flags: int, block: bytes | None = None, payload: bytes = b"\0") -> bytes:
    return be64(address | flags) + (named(block) if block is not None else b"") + payload


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE_SIZE


HEADER = be32(0x5145564D) + be32(3) + b"\x07" + be32(3) + b"q35"
SETUP = (
    b"\x01" + be32(2) + named(b"ram") + be32(0) + be32(4)
    + be64((RAM_PAGES + 1) * PAGE_SIZE | FLAG_MEM_SIZE)
    + named(b"mem0") + be64(RAM_PAGES * PAGE_SIZE) + named(ROM) + be64(PAGE_SIZE)
    + be64(FLAG_EOS) + b"\x7e" + be32(2)
)  # fmt: skip
DEVICES = b"\x04" + be32(3) + named(b"cpu") + be32(0) + be32(1) + b"device state" + b"\x1f"


def stream() -> bytes:
    part = (
        b"\x02" + be32(2)
        + record(0, FLAG_ZERO, b"mem0")
        + record(PAGE_SIZE, FLAG_PAGE | FLAG_CONTINUE, payload=page(1))
        + record(2 * PAGE_SIZE, FLAG_PAGE | FLAG_CONTINUE, payload=page(2))
        + record(0, FLAG_ZERO, ROM)  # another block's zero page stays
        + record(5 * PAGE_SIZE, FLAG_PAGE, b"mem0", page(5))
        + be64(FLAG_EOS) + b"\x7e" + be32(2)
    )  # fmt: skip
    end = (
        b"\x03" + be32(2)
        + record(6 * PAGE_SIZE, FLAG_ZERO | FLAG_CONTINUE)  # continues mem0 from the last section
        + record(7 * PAGE_SIZE, FLAG_PAGE | FLAG_CONTINUE, payload=page(7))
        + record(0, FLAG_PAGE, ROM, page(9))
        + be64(FLAG_EOS) + b"\x7e" + be32(2)
    )  # fmt: skip
    return HEADER + SETUP + part + end + DEVICES


def split(tmp_path: Path, data: bytes) -> tuple[int, bytes, bytes]:
    (tmp_path / "state").write_bytes(data)
    ram = tmp_path / "ram"
    with ram.open("wb") as f:
        f.truncate(RAM_PAGES * PAGE_SIZE)
    written = split_ram(tmp_path / "state", tmp_path / "rest", ram)
    return written, (tmp_path / "rest").read_bytes(), ram.read_bytes()


def test_guest_ram_pages_go_to_the_file_and_everything_else_stays_in_order(tmp_path: Path) -> None:
    written, rest, ram = split(tmp_path, stream())

    assert written == 4
    assert [ram[i * PAGE_SIZE] for i in range(RAM_PAGES)] == [0, 1, 2, 0, 0, 5, 0, 7]
    assert ram[PAGE_SIZE : 2 * PAGE_SIZE] == page(1)
    part = b"\x02" + be32(2) + record(0, FLAG_ZERO, ROM) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    end = b"\x03" + be32(2) + record(0, FLAG_PAGE, ROM, page(9)) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    assert rest == HEADER + SETUP + part + end + DEVICES


def test_a_kept_record_names_its_block_when_the_one_before_it_was_dropped(tmp_path: Path) -> None:
    part = (
        b"\x02" + be32(2)
        + record(0, FLAG_ZERO, ROM)
        + record(0, FLAG_PAGE, b"mem0", page(3))
        + record(0, FLAG_PAGE, ROM, page(4))  # named in the source: kept named
        + be64(FLAG_EOS) + b"\x7e" + be32(2)
    )  # fmt: skip
    end = b"\x03" + be32(2) + record(0, FLAG_ZERO | FLAG_CONTINUE) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    _, rest, _ = split(tmp_path, HEADER + SETUP + part + end + DEVICES)

    kept_part = (
        b"\x02" + be32(2)
        + record(0, FLAG_ZERO, ROM) + record(0, FLAG_PAGE | FLAG_CONTINUE, payload=page(4))
        + be64(FLAG_EOS) + b"\x7e" + be32(2)
    )  # fmt: skip
    kept_end = b"\x03" + be32(2) + record(0, FLAG_ZERO, ROM) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    assert rest == HEADER + SETUP + kept_part + kept_end + DEVICES


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("not a migration stream", b"QEVX" + stream()[4:]),
        ("a capability subsection", HEADER + b"\x05" + stream()[len(HEADER) :]),
        ("a compressed page", HEADER + SETUP + b"\x02" + be32(2) + record(0, 0x100, b"mem0")),
        ("a section that is not RAM's", HEADER + SETUP + b"\x02" + be32(9) + be64(FLAG_EOS)),
        ("a stream cut short", stream()[: len(HEADER) + len(SETUP) + 40]),
        (
            "a page filled with ones",
            HEADER + SETUP + b"\x02" + be32(2) + record(0, FLAG_ZERO, b"mem0", b"\1"),
        ),
        (
            "a page filled with ones among zero pages",
            HEADER
            + SETUP
            + b"\x02"
            + be32(2)
            + record(0, FLAG_ZERO, b"mem0")
            + record(PAGE_SIZE, FLAG_ZERO | FLAG_CONTINUE)
            + record(2 * PAGE_SIZE, FLAG_ZERO | FLAG_CONTINUE, payload=b"\1"),
        ),
    ],
)
def test_anything_else_is_refused_so_the_caller_loads_the_whole_stream(
    tmp_path: Path, what: str, data: bytes
) -> None:
    with pytest.raises(Unsupported):
        split(tmp_path, data)


def test_for_children_the_rest_is_written_as_with_x_ignore_shared(tmp_path: Path) -> None:
    """The layout QEMU 7.2 writes with the capability on (checked against a real saved state): the
    configuration names it, and every block's size is followed by its address."""
    (tmp_path / "state").write_bytes(stream())
    ram = tmp_path / "ram"
    ram.write_bytes(bytes(RAM_PAGES * PAGE_SIZE))
    split_ram(tmp_path / "state", tmp_path / "rest", ram, ignore_shared=True)

    capability = (
        b"\x05" + named(b"configuration/capabilities") + be32(1) + be32(1) + named(b"x-ignore-shared")
    )
    setup = (
        b"\x01" + be32(2) + named(b"ram") + be32(0) + be32(4)
        + be64((RAM_PAGES + 1) * PAGE_SIZE | FLAG_MEM_SIZE)
        + named(b"mem0") + be64(RAM_PAGES * PAGE_SIZE) + be64(0) + named(ROM) + be64(PAGE_SIZE) + be64(0)
        + be64(FLAG_EOS) + b"\x7e" + be32(2)
    )  # fmt: skip
    part = b"\x02" + be32(2) + record(0, FLAG_ZERO, ROM) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    end = b"\x03" + be32(2) + record(0, FLAG_PAGE, ROM, page(9)) + be64(FLAG_EOS) + b"\x7e" + be32(2)
    assert (tmp_path / "rest").read_bytes() == HEADER + capability + setup + part + end + DEVICES
    assert [ram.read_bytes()[i * PAGE_SIZE] for i in range(RAM_PAGES)] == [0, 1, 2, 0, 0, 5, 0, 7]
