"""``shells volume create | ls | get | rm``, ``shells bucket-credentials create | ls | rm`` and the
``--mount`` / ``--volume`` options of ``shells create``. A bucket's credentials come from the
environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``) or are named (``credentials=NAME``,
stored once with ``shells bucket-credentials create``), never from the command line, where ``ps``
would show them."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..domain.errors import InvalidRequest
from .args import Subparsers, connect
from .output import age, print_json, table

if TYPE_CHECKING:  # the SDK loads only when a command runs, never for ``serve``
    from ..sdk.wire import BucketMount, VolumeAttach

MOUNT_KEYS = {"bucket", "endpoint", "path", "prefix", "ro", "credentials"}


def parse_mount(text: str) -> BucketMount:
    """``bucket=NAME,endpoint=URL,path=/data[,prefix=P][,ro][,credentials=NAME]``: the credentials
    stored under NAME, or from the environment."""
    from ..sdk.wire import BucketMount

    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if key not in MOUNT_KEYS or (key != "ro" and not sep):
            raise InvalidRequest(
                f"--mount {text!r}: expected bucket=NAME,endpoint=URL,path=/dir[,prefix=P][,ro]"
                "[,credentials=NAME].",
                {"field": "--mount"},
            )
        fields[key] = value
    missing = [k for k in ("bucket", "endpoint", "path") if not fields.get(k)]
    named = fields.get("credentials") or None
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if missing or (named is None and (not key_id or not secret)):
        raise InvalidRequest(
            f"--mount {text!r} needs bucket, endpoint and path, and credentials=NAME or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (never on the command line).",
            {"field": "--mount"},
        )
    return BucketMount(
        fields["bucket"],
        fields["endpoint"],
        fields["path"],
        "" if named else key_id or "",
        "" if named else secret or "",
        prefix=fields.get("prefix", ""),
        read_only="ro" in fields,
        credentials=named,
    )


def parse_volume(text: str) -> VolumeAttach:
    """``NAME:/path[:ro]``."""
    from ..sdk.wire import VolumeAttach

    name, _, rest = text.partition(":")
    path, _, mode = rest.partition(":")
    if not name or not path or mode not in ("", "ro", "rw"):
        raise InvalidRequest(f"--volume {text!r}: expected NAME:/path[:ro].", {"field": "--volume"})
    return VolumeAttach(name, path, read_only=mode == "ro")


def add_create_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--mount",
        action="append",
        type=parse_mount,
        metavar="bucket=B,endpoint=URL,path=/P[,prefix=X][,ro][,credentials=NAME]",
        help="mount your bucket (credentials: stored ones by NAME, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY)",
    )
    s.add_argument(
        "--volume", action="append", type=parse_volume, metavar="NAME:/PATH[:ro]", help="attach a volume"
    )


def cmd_volume_create(args: argparse.Namespace) -> int:
    with connect() as client:
        volume = client.volumes.create(args.name, args.size_gib)
    print(f"{volume.name}: {volume.size_gib} GiB")
    return 0


def cmd_volume_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        found = client.volumes.list()
    if args.json:
        print_json(found)
        return 0
    rows = [
        [
            v.name,
            v.size_gib,
            len(v.attached),
            "-" if v.used_bytes is None else v.used_bytes,
            age(v.created_at),
        ]
        for v in found
    ]
    print(table(["NAME", "GIB", "SHELLS", "USED_BYTES", "CREATED"], rows))
    return 0


def cmd_volume_get(args: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.volumes.get(args.name))
    return 0


def cmd_volume_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for name in args.names:
            client.volumes.delete(name)
            print(f"{name}: deleted")
    return 0


def cmd_credentials_create(args: argparse.Namespace) -> int:
    key_id = args.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key_id or not secret:
        raise InvalidRequest(
            "shells bucket-credentials create needs --access-key-id (or AWS_ACCESS_KEY_ID) and "
            "AWS_SECRET_ACCESS_KEY in the environment (never on the command line).",
            {"field": "secret_access_key"},
        )
    with connect() as client:
        stored = client.bucket_credentials.create(args.name, key_id, secret)
    print(f"{stored.name}: {stored.access_key_id}")
    return 0


def cmd_credentials_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        found = client.bucket_credentials.list()
    if args.json:
        print_json(found)
        return 0
    print(
        table(
            ["NAME", "ACCESS_KEY_ID", "CREATED"],
            [[c.name, c.access_key_id, age(c.created_at)] for c in found],
        )
    )
    return 0


def cmd_credentials_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for name in args.names:
            client.bucket_credentials.delete(name)
            print(f"{name}: deleted")
    return 0


def register(sub: Subparsers) -> None:
    group = sub.add_parser(
        "bucket-credentials", help="S3 key pairs stored once for your tenant, named by mounts and syncs"
    )
    csub = group.add_subparsers(dest="credentials_command", required=True)
    s = csub.add_parser("create", help="store a key pair (the secret from AWS_SECRET_ACCESS_KEY)")
    s.add_argument("name")
    s.add_argument("--access-key-id", default=None, help="the key id (default: AWS_ACCESS_KEY_ID)")
    s.set_defaults(func=cmd_credentials_create)
    s = csub.add_parser("ls", help="list stored credentials (names and key ids, never secrets)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_credentials_ls)
    s = csub.add_parser("rm", help="delete stored credentials (shells made with them keep their copy)")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_credentials_rm)

    group = sub.add_parser("volume", help="volumes: filesystems of your tenant that outlive shells")
    vsub = group.add_subparsers(dest="volume_command", required=True)
    s = vsub.add_parser("create", help="create a volume")
    s.add_argument("name")
    s.add_argument("--size-gib", type=int, required=True, help="its size in GiB (enforced)")
    s.set_defaults(func=cmd_volume_create)
    s = vsub.add_parser("ls", help="list volumes")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_volume_ls)
    s = vsub.add_parser("get", help="show one volume and the shells that hold it")
    s.add_argument("name")
    s.set_defaults(func=cmd_volume_get)
    s = vsub.add_parser("rm", help="delete volumes and their data (refused while a shell holds one)")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_volume_rm)
