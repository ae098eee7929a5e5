"""A host process's CPU time and resident memory, and files' allocated size, from the kernel: what
the metrics sampler reads for a class whose shell is one process (a microvm's QEMU)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of ``pid`` (all its threads), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    try:
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)
    except (IndexError, ValueError):
        return None


def process_rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (``statm``'s resident pages), None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text(encoding="ascii").split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def allocated_bytes(paths: Iterable[Path]) -> int:
    """Bytes the filesystem has allocated to these files (sparse holes not counted); missing ones
    count 0."""
    total = 0
    for path in paths:
        try:
            total += path.stat().st_blocks * 512
        except OSError:
            continue
    return total
