"""Where the client connects and with which token: arguments first, then the environment."""

from __future__ import annotations

import os
import uuid

from .. import __version__
from ..domain.errors import Unauthenticated

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
USER_AGENT = f"shells-python/{__version__}"
DOOR_HEADER = "X-Shells-Door"
DEFAULT_DOOR = "sdk"
"""What the audit trail records as the door of the SDK's calls; the CLI sends ``cli``."""


def resolve(base_url: str | None, token: str | None) -> tuple[str, str]:
    """``(base_url, token)`` from the arguments or ``SHELLS_BASE_URL`` / ``SHELLS_API_TOKEN``.

    Raises:
        Unauthenticated: no token was given and ``SHELLS_API_TOKEN`` is not set.
    """
    url = base_url or os.environ.get("SHELLS_BASE_URL") or DEFAULT_BASE_URL
    token = token or os.environ.get("SHELLS_API_TOKEN")
    if not token:
        raise Unauthenticated("No API token: pass token=... or set SHELLS_API_TOKEN.")
    return url.rstrip("/"), token


def new_request_id() -> str:
    """A fresh id for one logical call; retries of that call send the same id."""
    return uuid.uuid4().hex
