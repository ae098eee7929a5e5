"""Named moments inside multi-step transitions, where end-to-end tests crash or fail the server.

A crash test has to cut a transition at one exact step (QEMU started but its state not loaded yet, a
restart between its stop and its start), which no timing from outside hits reliably. Each such step
calls ``reached(name)``; the server does nothing there unless its environment names that moment:

- ``SHELLS_TEST_CRASH_AT=<name>``: the server SIGKILLs itself there (a ``kill -9`` at that moment);
- ``SHELLS_TEST_FAIL_AT=<name>``: the step raises ``OSError`` (an unexpected host failure).

Only tests set them; an operator has no reason to.
"""

from __future__ import annotations

import errno
import os
import signal

CRASH_ENV = "SHELLS_TEST_CRASH_AT"
FAIL_ENV = "SHELLS_TEST_FAIL_AT"


def reached(name: str) -> None:
    """The transition got to moment ``name``: crash or fail here if a test asked for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FAIL_ENV) == name:
        raise OSError(errno.EIO, f"failure injected at {name} ({FAIL_ENV})")
