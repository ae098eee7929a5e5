"""Bucket mounts and volume attachments: what a shell asks for at create, and the rules on where
they may go inside it (docs/storage.md). Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import InvalidRequest
from .limits import MAX_SHELL_MOUNTS
from .paths import normalize_shell_path

RESERVED = ("/proc", "/dev", "/sys", "/.shells", "/etc/resolv.conf")
"""Paths that are the kernel's, the devices', or the agent's own: nothing is mounted at or below them."""
WHOLE = ("/", "/workspace", "/tmp", "/etc", "/usr", "/bin", "/sbin", "/lib")
"""Directories a mount may go below but never replace (the shell would lose its system or workspace)."""
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_PREFIX = 512
MAX_KEY_PART = 256


@dataclass(frozen=True)
class BucketCredentials:
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never printed whole, in a log or a traceback
        return f"BucketCredentials({self.access_key_id!r}, ***)"


@dataclass(frozen=True)
class NamedCredentials:
    """Bucket credentials the tenant stored once (``POST /v1/bucket-credentials``), named by a mount
    or a sync instead of inline keys; a create resolves the name to its keys before any check."""

    name: str


@dataclass(frozen=True)
class BucketMount:
    """A user's S3-compatible bucket served at ``path`` in the shell by a FUSE process on the host."""

    bucket: str
    endpoint: str
    prefix: str
    path: str
    read_only: bool
    credentials: BucketCredentials | NamedCredentials

    def keys(self) -> BucketCredentials:
        """The keys, once a create resolved a name (``control.bucket_credentials``)."""
        if not isinstance(self.credentials, BucketCredentials):
            raise TypeError(f"credentials {self.credentials.name!r} were not resolved")
        return self.credentials

    def public(self) -> dict[str, object]:
        """The wire form shown on the shell: everything but the credentials."""
        return {
            "bucket": self.bucket,
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "path": self.path,
            "read_only": self.read_only,
        }


@dataclass(frozen=True)
class VolumeAttachment:
    name: str
    path: str
    read_only: bool


def check_bucket(name: str, field: str) -> str:
    if not BUCKET_NAME.match(name) or ".." in name:
        raise InvalidRequest(
            f"'{name}' is not a bucket name: 3 to 63 lowercase letters, digits, '.' or '-'.", {"field": field}
        )
    return name


def check_endpoint(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidRequest(
            "'endpoint' must be http(s)://host[:port] without credentials in it (they go in 'credentials').",
            {"field": field},
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidRequest(
            "'endpoint' is the server only (http(s)://host[:port]); put the bucket in 'bucket'.",
            {"field": field},
        )
    return f"{parts.scheme}://{parts.netloc}"


def check_prefix(prefix: str, field: str) -> str:
    clean = prefix.strip("/")
    parts = clean.split("/") if clean else []
    if len(clean) > MAX_PREFIX or any(p in ("", ".", "..") for p in parts) or "\0" in clean:
        raise InvalidRequest(
            f"'prefix' must be a key prefix such as 'runs/2026' (at most {MAX_PREFIX} characters, "
            "no '.' or '..' parts).",
            {"field": field},
        )
    return clean


def check_volume_name(name: str, field: str = "name", what: str = "a volume name") -> str:
    if not VOLUME_NAME.match(name):
        raise InvalidRequest(
            f"'{name}' is not {what}: 1 to 63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit.",
            {"field": field},
        )
    return name


def check_credentials_name(name: str, field: str = "name") -> str:
    """Stored bucket credentials are named as volumes are."""
    return check_volume_name(name, field, "a name of bucket credentials")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_mount_paths(paths: list[tuple[str, str]]) -> list[str]:
    """The clean paths of a shell's mounts (``(field, path)`` each), refusing one that would shadow
    the root, a system directory, the kernel's or the agent's paths, or another mount."""
    if len(paths) > MAX_SHELL_MOUNTS:
        raise InvalidRequest(
            f"A shell takes at most {MAX_SHELL_MOUNTS} bucket mounts and volumes together.",
            {"field": paths[MAX_SHELL_MOUNTS][0]},
        )
    clean: list[str] = []
    for field, raw in paths:
        if not raw.startswith("/"):
            raise InvalidRequest(
                "A mount's 'path' must be absolute, such as /data or /workspace/in.", {"field": field}
            )
        path = normalize_shell_path(raw)
        if path in WHOLE:
            raise InvalidRequest(
                f"A mount at {path} would hide what the shell needs there; mount below it "
                f"(e.g. {path.rstrip('/')}/data).",
                {"field": field},
            )
        for reserved in RESERVED:
            if _under(path, reserved):
                raise InvalidRequest(
                    f"{path} is inside {reserved}, which belongs to the shell's system; choose another path.",
                    {"field": field},
                )
        for other in clean:
            if _under(path, other) or _under(other, path):
                raise InvalidRequest(
                    f"The mount at {path} would shadow the mount at {other} (or be shadowed by it); "
                    "give each mount its own directory.",
                    {"field": field},
                )
        clean.append(path)
    return clean
