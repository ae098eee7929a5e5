"""Taking guest RAM out of a saved QEMU state and writing it straight into the VM's RAM file.

A VM whose RAM was mapped copy-on-write (a shell restored from an image) is saved with its RAM in the
stream, every page of it: the ones it holds and, as a short "zero page" record, all the others. QEMU
loading such a stream into a fresh sparse RAM file takes each page through a fault on the shared
mapping: a zero page's target is read to see whether it must be cleared, and each read of a hole
allocates and clears a page of page cache; a data page is faulted in (cleared) and then copied. For a
512 MiB guest that was 1.8 s here. Instead the guest RAM's data pages are written into the file with
``pwritev`` (runs of pages, one call each), its zero pages are skipped (the file is all zeros), and
QEMU loads what is left: the other RAM blocks (firmware, option ROMs) and the devices' state.

QEMU's precopy loader does not check that every page of a block arrived, so a stream without the
guest RAM's pages loads like the whole one into RAM that already holds them.

With ``ignore_shared`` the rest is written as QEMU writes a stream with the ``x-ignore-shared``
capability on: the configuration names the capability (a ``configuration/capabilities``
subsection, which the loader compares with its own capabilities) and each RAM block's size is
followed by its guest address. That is a fork point's device state, loaded by children that map
the RAM file copy-on-write: QEMU would write the same bytes after loading the stream into a
stopped VM and saving it again, which is what it cost to make one before (~0.4 s of a fork here).
The address is written as 0: the loader compares it only for a block it ignores, and the only
such block is the guest RAM, which the memory backend maps at 0. Only the plain precopy
stream QEMU writes for us is understood (magic, version 3, the configuration section without
subsections, then the ``ram`` section's setup, parts and end, each with a footer); at anything else
``Unsupported`` is raised and the caller loads the original stream (the RAM file may then hold some
pages already, which the original stream overwrites with the same bytes).
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

MAGIC = 0x5145564D
VERSION = 3
SECTION_START, SECTION_PART, SECTION_END = 0x01, 0x02, 0x03
SUBSECTION, CONFIGURATION, FOOTER = 0x05, 0x07, 0x7E
FLAG_ZERO, FLAG_MEM_SIZE, FLAG_PAGE, FLAG_EOS, FLAG_CONTINUE = 0x02, 0x04, 0x08, 0x10, 0x20
PAGE_SIZE = 4096
FLAGS_MASK = PAGE_SIZE - 1
BE32 = struct.Struct(">I")
BE64 = struct.Struct(">Q")
GUEST_RAM = b"mem0"
"""The id of the guest RAM block (the ``memory-backend-file`` of ``qemu.device_args``)."""
IGNORE_SHARED = b"x-ignore-shared"
CAPABILITIES = b"configuration/capabilities"
CAPABILITIES_SUBSECTION = (
    bytes([SUBSECTION, len(CAPABILITIES)]) + CAPABILITIES + BE32.pack(1)  # its version
    + BE32.pack(1) + bytes([len(IGNORE_SHARED)]) + IGNORE_SHARED  # one capability, by name
)  # fmt: skip
"""What QEMU 7.2 appends to the configuration when ``x-ignore-shared`` is on."""
_LOW_NIBBLE_CLEAR = b"[" + re.escape(bytes(range(0, 256, 16))) + b"]"
ZERO_RUN = re.compile(
    b"(?:.{6}" + _LOW_NIBBLE_CLEAR + re.escape(bytes([FLAG_ZERO | FLAG_CONTINUE, 0])) + b")+", re.DOTALL
)
"""Consecutive zero-page records that continue the block named before (an 8-byte word whose low 12
bits are ``FLAG_ZERO | FLAG_CONTINUE``, then the fill byte 0): most of a guest's pages. Those of the
guest RAM block are skipped in one match instead of one record at a time (0.11 → 0.04 s of CPU for
a 512 MiB guest's state)."""
PAGE_RECORD = 8 + PAGE_SIZE
DATA_RUN = re.compile(
    b"(?:.{6}" + _LOW_NIBBLE_CLEAR + re.escape(bytes([FLAG_PAGE | FLAG_CONTINUE])) + b".{%d})+" % PAGE_SIZE,
    re.DOTALL,
)
"""Consecutive data-page records that continue the block named before: the rest of a guest's pages.
Those of the guest RAM block are taken a run at a time, each page's address read in place (0.09 →
0.03 s of CPU for a state holding 27,000 data pages)."""

Emit = Callable[[bytes | memoryview], object]


class Unsupported(Exception):
    """The stream has something this filter does not know; load the original."""


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise Unsupported("the stream ends early")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def be32(self) -> int:
        return int(BE32.unpack(self.take(4))[0])

    def be64(self) -> int:
        return int(BE64.unpack(self.take(8))[0])

    def name(self) -> bytes:
        return bytes(self.take(self.byte()))


def split_ram(
    src: Path, stream: Path, ram: Path, block: bytes = GUEST_RAM, *, ignore_shared: bool = False
) -> int:
    """Write ``src`` to ``stream`` without the page records of RAM block ``block``, writing that
    block's data pages into ``ram`` (which must hold all zeros) at their offsets instead. Returns how
    many pages went into ``ram``. ``ignore_shared``: ``stream`` is loaded with ``x-ignore-shared``
    on (see the module's docstring)."""
    with src.open("rb") as f:  # unmapped when nothing refers to it (an error's frames may, a while)
        data = memoryview(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ))
    fd = os.open(ram, os.O_WRONLY | os.O_CLOEXEC)
    try:
        with stream.open("wb", buffering=1 << 20) as out:
            pages = _Pages(fd, block)
            _filter(_Reader(data), out.write, pages, ignore_shared)
            pages.flush()
            return pages.written
    finally:
        os.close(fd)


class _Pages:
    """Data pages of the guest RAM block, written to its file in runs of adjacent pages."""

    MAX_RUN = 256  # pages a pwritev call takes (1 MiB, well under IOV_MAX)

    def __init__(self, fd: int, block: bytes) -> None:
        self.fd = fd
        self.block = block
        self.run: list[memoryview] = []
        self.run_start = 0
        self.written = 0

    def add(self, offset: int, page: memoryview) -> None:
        adjacent = offset == self.run_start + len(self.run) * PAGE_SIZE
        if self.run and (not adjacent or len(self.run) == self.MAX_RUN):
            self.flush()
        if not self.run:
            self.run_start = offset
        self.run.append(page)

    def flush(self) -> None:
        if self.run:
            expected = len(self.run) * PAGE_SIZE
            if os.pwritev(self.fd, self.run, self.run_start) != expected:
                raise OSError(f"short write into the RAM file at {self.run_start}")
            self.written += len(self.run)
            self.run = []


def _filter(reader: _Reader, emit: Emit, pages: _Pages, ignore_shared: bool) -> None:
    if reader.be32() != MAGIC or reader.be32() != VERSION:
        raise Unsupported("not a version 3 QEMU migration stream")
    if reader.data[reader.pos] == CONFIGURATION:
        reader.take(1)
        reader.take(reader.be32())  # the machine type
        if reader.data[reader.pos] == SUBSECTION:
            raise Unsupported("the configuration has subsections (capabilities such as x-ignore-shared)")
    emit(reader.data[: reader.pos])
    if ignore_shared:
        emit(CAPABILITIES_SUBSECTION)
    ram_section = _ram_setup(reader, emit, ignore_shared)
    named: list[bytes] = []  # the block the last record named: "continue" records reach across sections
    while True:
        start = reader.pos
        kind = reader.byte()
        if kind not in (SECTION_PART, SECTION_END) or reader.be32() != ram_section:
            raise Unsupported(f"section type {kind} where RAM was expected")
        emit(reader.data[start : reader.pos])
        _records(reader, emit, pages, named)
        _footer(reader, emit, ram_section)
        if kind == SECTION_END:
            emit(reader.data[reader.pos :])  # the devices' state, as it is
            return


def _ram_setup(reader: _Reader, emit: Emit, ignore_shared: bool) -> int:
    """The ``ram`` section's start: its header, the list of RAM blocks (each with an address of 0
    added if ``ignore_shared``), its end-of-section mark."""
    start = reader.pos
    if reader.byte() != SECTION_START:
        raise Unsupported("the first section does not start RAM")
    section = reader.be32()
    if reader.name() != b"ram":
        raise Unsupported("the first section is not RAM")
    reader.take(8)  # instance and version ids
    total = reader.be64()
    if total & FLAGS_MASK != FLAG_MEM_SIZE:
        raise Unsupported("the RAM section does not start with the blocks' sizes")
    remaining = total & ~FLAGS_MASK
    while remaining > 0:  # each block: its id and its length (saved without x-ignore-shared: no address)
        reader.name()
        remaining -= reader.be64()
        if ignore_shared:
            emit(reader.data[start : reader.pos])
            emit(BE64.pack(0))
            start = reader.pos
    if remaining != 0 or reader.be64() != FLAG_EOS:
        raise Unsupported("the RAM blocks' sizes do not add up")
    emit(reader.data[start : reader.pos])
    _footer(reader, emit, section)
    return section


def _footer(reader: _Reader, emit: Emit, section: int) -> None:
    start = reader.pos
    if reader.byte() != FOOTER or reader.be32() != section:
        raise Unsupported("a section has no footer")
    emit(reader.data[start : reader.pos])


def _records(reader: _Reader, emit: Emit, pages: _Pages, named: list[bytes]) -> None:
    """One section's page records up to its end mark: the guest RAM's go to ``pages`` (zero pages
    nowhere), the others to ``emit``. The first record emitted in a section names its block, as does
    every one whose block changed. ``named`` holds the block the stream last named, carried from
    section to section."""
    current: bytes | None = named[0] if named else None
    written: bytes | None = None
    while True:
        if current == pages.block:
            if (zeros := ZERO_RUN.match(reader.data, reader.pos)) is not None:
                reader.pos = zeros.end()  # the file holds zeros already
                continue
            if (run := DATA_RUN.match(reader.data, reader.pos)) is not None:
                for at in range(run.start(), run.end(), PAGE_RECORD):
                    address = BE64.unpack_from(reader.data, at)[0] & ~FLAGS_MASK
                    pages.add(address, reader.data[at + 8 : at + PAGE_RECORD])
                reader.pos = run.end()
                continue
        word = reader.be64()
        flags = word & FLAGS_MASK
        if flags == FLAG_EOS:
            emit(BE64.pack(word))
            named[:] = [current] if current is not None else []
            return
        kind = flags & ~FLAG_CONTINUE
        if kind not in (FLAG_ZERO, FLAG_PAGE):
            raise Unsupported(f"page record flags {flags:#x}")
        if not flags & FLAG_CONTINUE:
            current = reader.name()
        elif current is None:
            raise Unsupported("a page record continues a block never named")
        address = word & ~FLAGS_MASK
        payload = reader.take(1 if kind == FLAG_ZERO else PAGE_SIZE)
        if current == pages.block:
            if kind == FLAG_ZERO and payload[0] != 0:
                raise Unsupported("a page filled with something other than zeros")
            if kind == FLAG_PAGE:
                pages.add(address, payload)
            continue
        if current == written:
            emit(BE64.pack(address | kind | FLAG_CONTINUE))
        else:
            emit(BE64.pack(address | kind) + bytes([len(current)]) + current)
            written = current
        emit(payload)
