"""A template build on stderr: a bar redrawn in place on a terminal, one line per step elsewhere."""

from __future__ import annotations

from typing import TextIO

from ..sdk import BuildDone, BuildEvent, BuildOutput, BuildStep

BAR_WIDTH = 24


def bar(index: int, total: int, label: str, width: int) -> str:
    """``[#########.........] 3/7 label``, cut to ``width`` columns."""
    done = BAR_WIDTH * max(0, min(index, total)) // max(total, 1)
    line = f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {index}/{total} {label}"
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


class BuildProgress:
    """Feed it a build's events (it is an ``on_event`` callback); ``verbose`` also shows step output."""

    def __init__(self, stream: TextIO, *, verbose: bool = False, width: int = 80) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.verbose = verbose
        self.width = width
        self._drawn = False
        self._last: BuildStep | None = None

    def __call__(self, event: BuildEvent) -> None:
        if isinstance(event, BuildStep):
            self._last = event
            if self.tty:
                self._draw(bar(event.index, event.total, event.name, self.width))
            else:
                self.stream.write(f"step {event.index}/{event.total}: {event.name}\n")
        elif isinstance(event, BuildOutput) and self.verbose:
            self.end_line()
            self.stream.write(event.data)
        elif isinstance(event, BuildDone) and self.tty:
            total = self._last.total if self._last else 1
            self._draw(bar(total, total, "cached" if event.cached else "done", self.width))
            self.end_line()
        self.stream.flush()

    def _draw(self, line: str) -> None:
        self.stream.write(f"\r{line}\x1b[K")
        self._drawn = True

    def end_line(self) -> None:
        """Leave the bar's line, so that what comes next starts on a fresh one."""
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False
