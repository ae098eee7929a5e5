"""Actions in flight, written down so that start-up can finish what a crash of the server cut short.

Start, stop, restart, reinstall_os and wipe_state change the host first and the record after, so
a crash in between leaves a record that says nothing of them (a shell caught mid-restart looks like
one whose processes vanished). Each writes ``<data_dir>/inflight/<shell id>.json`` before it
touches the host and removes it once the record is changed; reconciliation finishes every entry it
finds (``reconcile.finish``). Pause, resume, snapshot and fork need none: the host's own state
tells how far they got, and creates are already recorded as ``creating``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..domain.capabilities import Capability

log = logging.getLogger(__name__)

JOURNALED = frozenset(
    {Capability.START, Capability.STOP, Capability.RESTART, Capability.REINSTALL_OS, Capability.WIPE_STATE}
)


@dataclass(frozen=True)
class Intent:
    shell_id: str
    action: Capability
    by: str
    """The principal who asked."""


class Inflight:
    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "inflight"

    def _path(self, shell_id: str) -> Path:
        return self.dir / f"{shell_id}.json"

    @contextmanager
    def recording(self, shell_id: str, action: Capability, by: str) -> Iterator[None]:
        """Hold an entry for ``action`` on the shell while the block runs (the caller holds the
        shell's lock, so there is at most one). Actions not in ``JOURNALED`` write nothing."""
        if action not in JOURNALED:
            yield
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(shell_id)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"action": action.value, "by": by}), encoding="utf-8")
        partial.replace(path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def pending(self) -> dict[str, Intent]:
        """Every entry left by a crash, by shell id (unreadable ones are dropped with a warning)."""
        found: dict[str, Intent] = {}
        for path in self.dir.glob("*.json") if self.dir.exists() else []:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                found[path.stem] = Intent(path.stem, Capability(entry["action"]), str(entry["by"]))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("dropping the unreadable in-flight entry %s", path)
                self.done(path.stem)
        return found

    def done(self, shell_id: str) -> None:
        self._path(shell_id).unlink(missing_ok=True)
