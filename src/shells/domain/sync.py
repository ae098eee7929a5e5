"""Workspace sync (docs/storage.md): a shell's /workspace mirrored to a bucket its user owns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidRequest
from .mounts import check_credentials_name


@dataclass(frozen=True)
class SyncTarget:
    """Where a shell's /workspace goes: ``prefix/<path below /workspace>`` in ``bucket`` at
    ``endpoint``, written with the user's key (its secret never leaves the host's memory and the
    record, where it is sealed)."""

    endpoint: str
    bucket: str
    prefix: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    credentials_name: str | None = None
    """Stored credentials named instead of keys (empty until a create resolves the name)."""

    def to_public(self) -> dict[str, Any]:
        """What the API shows: never the secret."""
        return {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "access_key_id": self.access_key_id,
        }


@dataclass
class SyncStatus:
    """What a shell's sync has done: the files and bytes in the bucket as of the last pass, what
    differed at the last look and is not there yet, and the last error (None once a pass succeeds)."""

    synced_files: int = 0
    synced_bytes: int = 0
    pending_files: int = 0
    skipped_files: int = 0
    """Entries that are not mirrored: links, devices, names that are not UTF-8 or too long."""
    last_synced_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_error_code: str | None = None
    """The bucket error's code (``bucket_denied``, ``bucket_not_found``, ``bucket_unreachable``;
    docs/storage.md), or ``runtime_failure`` for a failure on the host's side."""
    failures: int = 0
    """Passes failed in a row (the wait before the next grows with it)."""

    def to_public(self) -> dict[str, Any]:
        return {
            "state": "failing" if self.last_error else "synced" if self.pending_files == 0 else "pending",
            "synced_files": self.synced_files,
            "synced_bytes": self.synced_bytes,
            "pending_files": self.pending_files,
            "skipped_files": self.skipped_files,
            "last_synced_at": None if self.last_synced_at is None else self.last_synced_at.isoformat(),
            "last_error": self.last_error,
            "last_error_code": self.last_error_code if self.last_error else None,
            "last_error_at": None if self.last_error_at is None else self.last_error_at.isoformat(),
        }


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_PREFIX = 512


def parse_sync(value: object) -> SyncTarget | None:
    """The ``sync`` of a create: ``{"bucket", "endpoint", "prefix"?, "region"?, "credentials":
    {"access_key_id", "secret_access_key"}}`` (InvalidRequest naming the field otherwise)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(
            "'sync' must be an object with bucket, endpoint and credentials.", {"field": "sync"}
        )
    unknown = set(value) - {"bucket", "endpoint", "prefix", "region", "credentials"}
    if unknown:
        raise InvalidRequest(f"'sync' has no field {sorted(unknown)[0]!r}.", {"field": "sync"})
    bucket = value.get("bucket")
    if not isinstance(bucket, str) or not _BUCKET.match(bucket):
        raise InvalidRequest(
            "'sync.bucket' must be a bucket name: 3 to 63 lowercase letters, digits, '.' or '-'.",
            {"field": "sync.bucket"},
        )
    endpoint = value.get("endpoint")
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise InvalidRequest(
            "'sync.endpoint' must be the S3 server's http(s)://host[:port], without a path or "
            "credentials (those go in 'sync.credentials').",
            {"field": "sync.endpoint"},
        )
    prefix = value.get("prefix", "")
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX:
        raise InvalidRequest(
            f"'sync.prefix' must be text of at most {MAX_PREFIX} characters.", {"field": "sync.prefix"}
        )
    prefix = prefix.strip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise InvalidRequest(
            "'sync.prefix' must be a path like 'runs/42', without '.' or '..'.", {"field": "sync.prefix"}
        )
    region = value.get("region", "us-east-1")
    if not isinstance(region, str) or not region or len(region) > 64:
        raise InvalidRequest(
            "'sync.region' must be a region name such as us-east-1.", {"field": "sync.region"}
        )
    creds = value.get("credentials")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host + (f":{parts.port}" if parts.port else "")
    if isinstance(creds, str):  # stored once per tenant (POST /v1/bucket-credentials)
        name = check_credentials_name(creds, "sync.credentials")
        return SyncTarget(f"{parts.scheme}://{netloc}", bucket, prefix, "", "", region, name)
    key_id = creds.get("access_key_id") if isinstance(creds, dict) else None
    secret = creds.get("secret_access_key") if isinstance(creds, dict) else None
    if (
        not isinstance(creds, dict)
        or set(creds) != {"access_key_id", "secret_access_key"}
        or not isinstance(key_id, str)
        or not isinstance(secret, str)
        or not 0 < len(key_id) <= 256
        or not 0 < len(secret) <= 256
    ):
        raise InvalidRequest(
            '\'sync.credentials\' must be {"access_key_id", "secret_access_key"}: the bucket\'s key, '
            "or the name of credentials stored with POST /v1/bucket-credentials.",
            {"field": "sync.credentials"},
        )
    return SyncTarget(f"{parts.scheme}://{netloc}", bucket, prefix, key_id, secret, region)
