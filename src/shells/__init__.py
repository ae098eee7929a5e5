"""Shells: self-hostable sandboxes for untrusted code.

``from shells import Shells, AsyncShells, Shell, AsyncShell, ShellsError`` gives the Python SDK. The
SDK (and httpx under it) is imported on first use, so that ``import shells`` stays cheap for the
server and the tools that only need its other modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .sdk import (
        ActionNotSupported,
        AsyncShell,
        AsyncShells,
        AuthError,
        CommandNotFound,
        CommandResult,
        Conflict,
        FeatureUnavailable,
        FileNotFound,
        InvalidRequest,
        InvalidState,
        NotFound,
        PayloadTooLarge,
        PermissionDenied,
        QuotaExceeded,
        RetryPolicy,
        Shell,
        ShellNotFound,
        Shells,
        ShellsError,
        Timeout,
        Unauthenticated,
        Unavailable,
    )

__all__ = [
    "ActionNotSupported",
    "AsyncShell",
    "AsyncShells",
    "AuthError",
    "CommandNotFound",
    "CommandResult",
    "Conflict",
    "FeatureUnavailable",
    "FileNotFound",
    "InvalidRequest",
    "InvalidState",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuotaExceeded",
    "RetryPolicy",
    "Shell",
    "ShellNotFound",
    "Shells",
    "ShellsError",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'shells' has no attribute {name!r}")
