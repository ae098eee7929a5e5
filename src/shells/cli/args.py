"""What every command module shares: the subparsers type it registers on, and the SDK client."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ..sdk import Shells

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


DOOR = "cli"
"""What the audit trail records as the door of the CLI's requests (``X-Shells-Door``)."""


def connect() -> Shells:
    """A client for ``SHELLS_BASE_URL`` with ``SHELLS_API_TOKEN`` that names the CLI as its door
    (imported here so that ``shells serve`` never loads the SDK)."""
    from ..sdk import Shells

    return Shells(headers={"X-Shells-Door": DOOR})
