"""``shells template ls | get | build | import | export | save | rm``."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

from .args import Subparsers, connect
from .output import age, print_json, table


def inline_sources(spec_path: Path) -> str:
    """The spec's TOML text with each ``[[files]]`` entry's local ``source`` (relative to the spec)
    replaced by its ``content``, since the server cannot read this machine's files."""
    text = spec_path.read_text(encoding="utf-8")
    spec = tomllib.loads(text)
    files = spec.get("files")
    if not isinstance(files, list) or not any(isinstance(f, dict) and "source" in f for f in files):
        return text
    for entry in files:
        if isinstance(entry, dict) and "source" in entry:
            source = spec_path.parent / str(entry.pop("source"))
            try:
                entry["content"] = source.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SystemExit(f"shells: [[files]] source {str(source)!r}: {exc}") from None
    return "\n".join(f"{_key(k)} = {_toml(v)}" for k, v in spec.items()) + "\n"


def _key(key: str) -> str:
    return json.dumps(key)


def _toml(value: Any) -> str:
    """A value as inline TOML (JSON string escapes are valid in TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise SystemExit(f"shells: the spec holds a {type(value).__name__}, which templates do not use")


def cmd_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        templates = client.templates.list()
    if args.json:
        print_json(templates)
        return 0
    header = ["NAME", "KIND", "STATUS", "SIZE", "PARENT", "AGE"]
    rows = [
        [
            t.name,
            t.kind,
            t.status,
            "-" if t.size_bytes is None else f"{t.size_bytes / 2**20:.0f} MiB",
            t.parent or "-",
            age(t.created_at),
        ]
        for t in templates
    ]
    print(table(header, rows))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.templates.get(args.name))
    return 0


def context_tar(context: Path, dockerfile: Path) -> tuple[bytes, str]:
    """The build context ``context`` as a gzip tar, and the Dockerfile's path inside it (it must be
    inside: the server reads it from the context)."""
    try:
        inside = dockerfile.resolve().relative_to(context.resolve())
    except ValueError:
        raise SystemExit(
            f"shells: the Dockerfile {dockerfile} must be inside the context {context}"
        ) from None
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(context, arcname=".")
    return out.getvalue(), inside.as_posix()


def cmd_build(args: argparse.Namespace) -> int:
    from ..domain.isolation import DEVBOX_TEMPLATE
    from .progress import BuildProgress

    if args.file:
        if not args.spec:
            raise SystemExit("shells: template build -f Dockerfile needs NAME:TAG")
        data, inside = context_tar(Path(args.context), Path(args.file))
        progress = BuildProgress(sys.stderr, verbose=args.verbose, width=shutil.get_terminal_size().columns)
        with connect() as client:
            try:
                name = client.templates.build_dockerfile(
                    args.spec, data, dockerfile=inside, on_event=progress
                ).name
            finally:
                progress.end_line()
        print(name)
        return 0
    if sum(bool(x) for x in (args.spec, args.builtin, args.all)) != 1:
        raise SystemExit("shells: give one of SPEC.toml, --builtin NAME or --all")
    progress = BuildProgress(sys.stderr, verbose=args.verbose, width=shutil.get_terminal_size().columns)
    with connect() as client:
        builds: list[tuple[str | None, str | None]]  # (spec, builtin)
        if args.all:
            wanted = set(client.templates.presets().values()) | {DEVBOX_TEMPLATE}
            builds = [(None, name) for name in sorted(wanted)]
        elif args.builtin:
            builds = [(None, args.builtin)]
        else:
            builds = [(inline_sources(Path(args.spec)), None)]
        try:
            for spec, builtin in builds:
                print(client.templates.build(spec, builtin=builtin, on_event=progress).name)
        finally:
            progress.end_line()
    return 0


def _registry_credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """``--username`` with the password from ``SHELLS_REGISTRY_PASSWORD`` (never on the command line,
    where other users of the machine could read it)."""
    if not args.username:
        return None
    password = os.environ.get("SHELLS_REGISTRY_PASSWORD")
    if not password:
        raise SystemExit("shells: --username needs the password in SHELLS_REGISTRY_PASSWORD")
    return args.username, password


def cmd_import(args: argparse.Namespace) -> int:
    from .progress import BuildProgress

    progress = BuildProgress(sys.stderr, verbose=args.verbose, width=shutil.get_terminal_size().columns)
    with connect() as client:
        try:
            template = client.templates.import_image(
                args.image, args.name, credentials=_registry_credentials(args), on_event=progress
            )
        finally:
            progress.end_line()
    print(template.name)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .progress import BuildProgress

    progress = BuildProgress(sys.stderr, verbose=True, width=shutil.get_terminal_size().columns)
    with connect() as client:
        try:
            client.templates.export(
                args.name, args.image, credentials=_registry_credentials(args), on_event=progress
            )
        finally:
            progress.end_line()
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    with connect() as client:
        template = client.templates.save(args.id, args.name, include_workspace=args.workspace)
    print(template.name)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for name in args.names:
            client.templates.delete(name)
            print(f"{name}: deleted")
    return 0


def register(sub: Subparsers) -> None:
    group = sub.add_parser("template", help="templates: the root filesystems shells start from")
    tsub = group.add_subparsers(dest="template_command", required=True)

    s = tsub.add_parser("ls", help="list templates")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ls)

    s = tsub.add_parser("get", help="show one template")
    s.add_argument("name")
    s.set_defaults(func=cmd_get)

    s = tsub.add_parser("build", help="build from SPEC.toml, a builtin, every builtin, or a Dockerfile")
    s.add_argument("spec", nargs="?", metavar="SPEC.toml | NAME:TAG", help="NAME:TAG with -f")
    s.add_argument("-f", "--file", default=None, metavar="Dockerfile", help="build from a Dockerfile")
    s.add_argument("--context", default=".", metavar="DIR", help="the Dockerfile's build context (default .)")
    s.add_argument("--builtin", default=None, metavar="NAME", help="e.g. rust:1")
    s.add_argument("--all", action="store_true", help="every language's builtin template and devbox:1")
    s.add_argument("-v", "--verbose", action="store_true", help="show the steps' output")
    s.set_defaults(func=cmd_build)

    s = tsub.add_parser("import", help="import an OCI image from a registry as a template")
    s.add_argument("image", metavar="REF", help="registry/repository:tag or …@sha256:<digest>")
    s.add_argument("name", metavar="NAME:TAG")
    s.add_argument(
        "--username", default=None, help="registry user; the password is read from SHELLS_REGISTRY_PASSWORD"
    )
    s.add_argument("-v", "--verbose", action="store_true", help="show every layer's progress")
    s.set_defaults(func=cmd_import)

    s = tsub.add_parser("export", help="push a template to a registry as an OCI image")
    s.add_argument("name", metavar="NAME:TAG")
    s.add_argument("image", metavar="REF", help="registry/repository:tag")
    s.add_argument(
        "--username", default=None, help="registry user; the password is read from SHELLS_REGISTRY_PASSWORD"
    )
    s.set_defaults(func=cmd_export)

    s = tsub.add_parser("save", help="save a shell's system as a template")
    s.add_argument("id")
    s.add_argument("name", metavar="NAME:TAG")
    s.add_argument("--workspace", action="store_true", help="include /workspace")
    s.set_defaults(func=cmd_save)

    s = tsub.add_parser("rm", help="delete templates")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_rm)
