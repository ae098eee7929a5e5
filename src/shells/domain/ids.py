"""Unguessable public identifiers with a type prefix (``sh_…``, ``snap_…``)."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 20) -> str:
    """A prefix plus ``length`` random base-36 characters (~103 bits for 20)."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def looks_like(prefix: str, value: str) -> bool:
    body = value.removeprefix(prefix + "_")
    return body != value and 8 <= len(body) <= 64 and all(c in _ALPHABET for c in body)
