"""Parsing of a create's ``mounts`` (users' buckets) and ``volumes`` (tenant volumes), door-neutral,
with typed errors naming the field to fix (docs/storage.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.errors import InvalidRequest
from ..domain.mounts import (
    BucketCredentials,
    BucketMount,
    NamedCredentials,
    VolumeAttachment,
    check_bucket,
    check_credentials_name,
    check_endpoint,
    check_mount_paths,
    check_prefix,
    check_volume_name,
)
from .requests import reject_unknown

MAX_CREDENTIAL_CHARS = 256


def _entries(value: object, field: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidRequest(f"'{field}' must be a list of objects.", {"field": field})
    return value


def _text(entry: Mapping[str, Any], key: str, field: str, *, default: str | None = None) -> str:
    value = entry.get(key) if entry.get(key) is not None else default
    if not isinstance(value, str) or (default is None and not value):
        raise InvalidRequest(f"'{field}.{key}' must be a non-empty string.", {"field": f"{field}.{key}"})
    return value


def _flag(entry: Mapping[str, Any], field: str) -> bool:
    value = entry.get("read_only") or False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{field}.read_only' must be true or false.", {"field": f"{field}.read_only"})
    return value


def _credentials(entry: Mapping[str, Any], field: str) -> BucketCredentials | NamedCredentials:
    creds = entry.get("credentials")
    if isinstance(creds, str):
        return NamedCredentials(check_credentials_name(creds, f"{field}.credentials"))
    if not isinstance(creds, dict):
        raise InvalidRequest(
            f'\'{field}.credentials\' must be {{"access_key_id", "secret_access_key"}} for the bucket, '
            "or the name of credentials stored with POST /v1/bucket-credentials.",
            {"field": f"{field}.credentials"},
        )
    reject_unknown(creds, {"access_key_id", "secret_access_key"})
    key_id = _text(creds, "access_key_id", f"{field}.credentials")
    secret = _text(creds, "secret_access_key", f"{field}.credentials")
    if len(key_id) > MAX_CREDENTIAL_CHARS or len(secret) > MAX_CREDENTIAL_CHARS or "\n" in key_id + secret:
        raise InvalidRequest(
            f"'{field}.credentials' are at most {MAX_CREDENTIAL_CHARS} characters each, on one line.",
            {"field": f"{field}.credentials"},
        )
    return BucketCredentials(key_id, secret)


def parse_storage(
    mounts: object, volumes: object
) -> tuple[tuple[BucketMount, ...], tuple[VolumeAttachment, ...]]:
    """The bucket mounts and volume attachments of a create; their paths are checked together, so
    no two shadow each other and none shadows the shell's system."""
    bucket_entries, volume_entries = _entries(mounts, "mounts"), _entries(volumes, "volumes")
    fields = [f"mounts[{i}]" for i in range(len(bucket_entries))]
    fields += [f"volumes[{i}]" for i in range(len(volume_entries))]
    raw_paths = [
        (f"{f}.path", _text(e, "path", f))
        for f, e in zip(fields, [*bucket_entries, *volume_entries], strict=True)
    ]
    paths = check_mount_paths(raw_paths)
    buckets = []
    for i, entry in enumerate(bucket_entries):
        field = fields[i]
        reject_unknown(entry, {"bucket", "endpoint", "prefix", "path", "read_only", "credentials"})
        buckets.append(
            BucketMount(
                bucket=check_bucket(_text(entry, "bucket", field), f"{field}.bucket"),
                endpoint=check_endpoint(_text(entry, "endpoint", field), f"{field}.endpoint"),
                prefix=check_prefix(_text(entry, "prefix", field, default=""), f"{field}.prefix"),
                path=paths[i],
                read_only=_flag(entry, field),
                credentials=_credentials(entry, field),
            )
        )
    attachments = []
    for j, entry in enumerate(volume_entries):
        field = fields[len(bucket_entries) + j]
        reject_unknown(entry, {"name", "path", "read_only"})
        attachments.append(
            VolumeAttachment(
                name=check_volume_name(_text(entry, "name", field), f"{field}.name"),
                path=paths[len(bucket_entries) + j],
                read_only=_flag(entry, field),
            )
        )
    names = [a.name for a in attachments]
    if len(set(names)) != len(names):
        raise InvalidRequest("A volume can be attached to a shell only once.", {"field": "volumes"})
    return tuple(buckets), tuple(attachments)
