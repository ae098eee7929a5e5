"""What the host keeps of a VM's console: the newest bytes, never more than the cap."""

from __future__ import annotations

from pathlib import Path

from shells.runtime.microvm.console import CONSOLE_BYTES, append_bounded, chardev_args


def test_appends_keep_the_newest_bytes_within_the_cap(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    append_bounded(log, b"boot\n", limit=16)
    assert log.read_bytes() == b"boot\n"
    append_bounded(log, b"0123456789", limit=16)
    assert log.read_bytes() == b"boot\n0123456789"
    append_bounded(log, b"abcdef", limit=16)
    assert log.read_bytes() == b"\n0123456789abcdef"[-16:]
    append_bounded(log, b"x" * 40 + b"END", limit=16)
    assert log.read_bytes() == b"x" * 13 + b"END"
    assert [p.name for p in tmp_path.iterdir()] == ["console.log"]


def test_the_ring_in_qemu_has_the_same_cap_and_a_power_of_two_size() -> None:
    assert CONSOLE_BYTES & (CONSOLE_BYTES - 1) == 0
    assert f"ringbuf,id=console,size={CONSOLE_BYTES}" in chardev_args()
