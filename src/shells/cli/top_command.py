"""``shells top``: your shells' CPU, memory and disk, refreshed live (``--once``: one table)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..domain.errors import ShellNotFound
from .args import Subparsers, connect
from .output import print_json, table

if TYPE_CHECKING:  # the parser is built without loading the SDK
    from ..sdk import MetricSample, Shell, Shells

BARS = " ▁▂▃▄▅▆▇█"
TREND = 20
"""Samples in the CPU trend column."""


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return "-"


def sparkline(values: Sequence[float | None]) -> str:
    """One character per sample, scaled to the highest (at least one core's 100 %)."""
    top = max([v for v in values if v is not None] + [100.0])
    return "".join(
        " " if v is None else BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))] for v in values
    )


def rows_for(shells: Sequence[Shell], window_s: float) -> list[list[object]]:
    since = time.time() - window_s
    rows: list[list[object]] = []
    for shell in shells:
        try:
            samples: list[MetricSample] = shell.metrics(start=since)
        except ShellNotFound:
            continue
        last = samples[-1] if samples else None
        cpu = "-" if last is None or last.cpu_percent is None else f"{last.cpu_percent:.1f}"
        trend = sparkline([s.cpu_percent for s in samples[-TREND:]])
        name = shell.info.name if shell.info.name != shell.id else "-"
        rows.append(
            [
                shell.id,
                name,
                shell.info.state,
                cpu,
                size(last.memory_bytes if last else None),
                size(last.disk_bytes if last else None),
                trend,
            ]
        )
    return rows


def chosen(client: Shells, ids: Sequence[str]) -> list[Shell]:
    if ids:
        return [client.get(i) for i in ids]
    return [s for s in client.list() if s.info.state in ("running", "paused")]


def cmd_top(args: argparse.Namespace) -> int:
    header = ["ID", "NAME", "STATE", "CPU %", "MEMORY", "DISK", "CPU TREND"]
    with connect() as client:
        if args.json:
            print_json({s.id: s.metrics() for s in chosen(client, args.ids)})
            return 0
        live = not args.once
        try:
            while True:
                text = table(header, rows_for(chosen(client, args.ids), window_s=TREND * 10 * args.interval))
                if live and sys.stdout.isatty():
                    sys.stdout.write("\x1b[H\x1b[2J")
                print(text, flush=True)
                if not live:
                    return 0
                time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


def register(sub: Subparsers) -> None:
    s = sub.add_parser("top", help="your shells' CPU, memory and disk, live")
    s.add_argument("ids", nargs="*", help="these shells (default: every running or paused one)")
    s.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="refresh period")
    s.add_argument("--once", action="store_true", help="print one table and exit")
    s.add_argument("--json", action="store_true", help="every sample of each shell, once")
    s.set_defaults(func=cmd_top)
