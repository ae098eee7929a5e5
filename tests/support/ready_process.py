"""A helper process (a test service) that prints ``ready`` once it serves; killed afterwards."""

from __future__ import annotations

import select
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_WAIT_S = 10.0


@contextmanager
def ready_process(argv: Sequence[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in the repository root, wait for its ``ready`` line, kill it on exit."""
    process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], READY_WAIT_S)
        if not ready or process.stdout.readline() != b"ready\n":
            raise RuntimeError(f"{' '.join(argv)} did not start")
        yield process
    finally:
        process.kill()
        process.wait(READY_WAIT_S)
        process.stdout.close()
