"""Validation of file paths named by callers: absolute inside the shell, no '..', no NUL."""

from __future__ import annotations

from .errors import InvalidPath

MAX_PATH_BYTES = 4096
WORKSPACE = "/workspace"


def normalize_shell_path(path: str) -> str:
    """Return a clean absolute path inside the shell; a relative path is taken from /workspace.

    '..' is refused rather than resolved, so a path always means what it says; symlinks are resolved
    by the agent inside the shell's own root, where they cannot point out of it.
    """
    if not path:
        raise InvalidPath("The 'path' parameter is empty; name a file such as /workspace/main.py.")
    if "\0" in path:
        raise InvalidPath("The path contains a NUL byte; remove it.")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise InvalidPath(f"The path is longer than {MAX_PATH_BYTES} bytes.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidPath("The path may not contain '..'; give the absolute path inside the shell instead.")
    if not path.startswith("/"):
        return WORKSPACE + ("/" + "/".join(parts) if parts else "")
    return "/" + "/".join(parts)
