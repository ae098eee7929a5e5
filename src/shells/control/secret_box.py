"""Sealing of secret values with a key kept outside the database (AES-256-GCM).

The key is 32 random bytes in a file (``Settings.secrets_key_file``, by default
``data_dir/secrets.key``), created with mode 0600 at first start. A copy of the database alone
(a backup, a dump) holds only ciphertext. Each value is sealed with its tenant and name as associated
data, so a sealed value copied to another row does not open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..domain.errors import RuntimeFailure

_VERSION = b"\x01"
_NONCE_BYTES = 12


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, made (0600, by an exclusive create) if it does not exist yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != 32:
            raise RuntimeFailure(f"the secrets key {path} must hold exactly 32 bytes") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, tenant: str, name: str, value: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, value.encode(), _context(tenant, name))

    def open(self, tenant: str, name: str, sealed: bytes) -> str:
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            if sealed[:1] != _VERSION:
                raise InvalidTag
            return self._aead.decrypt(nonce, body, _context(tenant, name)).decode()
        except InvalidTag:
            raise RuntimeFailure(
                f"secret {name!r} does not open with this instance's key (was the key file replaced?)"
            ) from None


def _context(tenant: str, name: str) -> bytes:
    return f"{tenant}\0{name}".encode()
