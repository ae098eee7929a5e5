"""``shells create | ls | get | exec | run | action | cp | events | rm | info``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .args import Subparsers, connect
from .output import age, key_values, print_json, table
from .storage_commands import add_create_options

if TYPE_CHECKING:
    from ..domain.errors import TemplateNotBuilt
    from ..sdk import CommandResult, Shell, Shells

ACTIONS = (
    "logs",
    "restart",
    "snapshot",
    "stop",
    "start",
    "reinstall_os",
    "wipe_state",
    "pause",
    "resume",
    "fork",
)
_REMOTE = re.compile(r"([A-Za-z0-9_.-]+):(.*)")


def cmd_info(_: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.info())
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from ..domain.errors import TemplateNotBuilt

    with connect() as client:

        def create() -> Shell:
            return client.create(
                args.language,
                runtime=args.runtime,
                network=args.network,
                allow=args.allow,
                networks=args.net,
                shape=args.shape,
                template=args.template,
                snapshot=args.snapshot,
                name=args.name,
                env=key_values(args.env, "--env") or None,
                labels=key_values(args.label, "--label") or None,
                idle_timeout_s=args.idle_timeout,
                secrets=args.secret,
                auto_resume=args.auto_resume,
                region=args.region,
                sync=sync_option(args.sync, args.sync_credentials),
                mounts=args.mount,
                volumes=args.volume,
            )

        try:
            shell = create()
        except TemplateNotBuilt as exc:
            build_on_first_use(client, exc, sys.stderr)
            shell = create()
    if args.json:
        print_json(shell.info)
    else:
        print(shell.id)
    return 0


def build_on_first_use(client: Shells, refusal: TemplateNotBuilt, out: TextIO) -> None:
    """Build the built-in template a create was refused for, showing its progress on ``out``.

    The API answers a create at once (``template_not_built`` with the template and an estimate) rather
    than holding the request open for minutes; the CLI, which has a person watching, builds it
    through the build endpoint's progress stream and then creates the shell."""
    from .progress import BuildProgress

    name = str(refusal.details.get("template", ""))
    if not name:
        raise refusal
    estimate = refusal.details.get("estimated_seconds")
    about = f" (about {estimate} s, once per host)" if estimate else ""
    print(f"shells: {name} is not built on this server yet; building it now{about}", file=out)
    progress = BuildProgress(out, verbose=False, width=shutil.get_terminal_size().columns)
    try:
        client.templates.build(builtin=name, on_event=progress)
    finally:
        progress.end_line()


def cmd_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        infos = [s.info for s in client.list(state=args.state, runtime=args.runtime, label=args.label)]
    if args.json:
        print_json(infos)
        return 0
    header = ["ID", "NAME", "STATE", "RUNTIME", "LANGUAGE", "NETWORK", "SHAPE", "REGION", "AGE"]
    rows = [
        [
            i.id,
            i.name if i.name != i.id else "-",
            i.state,
            i.runtime,
            i.language,
            i.network.mode,
            i.shape,
            i.region,
            age(i.created_at),
        ]
        for i in infos
    ]
    print(table(header, rows))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.get(args.id).info)
    return 0


def _writer(stream: TextIO) -> Callable[[str], None]:
    def write(data: str) -> None:
        stream.write(data)
        stream.flush()

    return write


def _finish(result: CommandResult, timeout: float | None) -> int:
    """Say on stderr what the exit code alone does not, and return the exit code."""
    if result.timed_out:
        print(f"shells: timed out after {timeout or 'the default'} s and was killed", file=sys.stderr)
    if result.truncated:
        print("shells: the output was cut at the server's limit", file=sys.stderr)
    return result.exit_code


def _exec_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--env", action="append", metavar="KEY=VALUE")
    options.add_argument("--cwd", default=None)
    options.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    options.add_argument("--stdin", action="store_true", help="send this process's stdin to the command")
    return options


EXEC_OPTIONS = _exec_options()


def cmd_exec(args: argparse.Namespace) -> int:
    argv = args.argv
    if argv and argv[0].startswith("-"):  # options after the id: argparse left them in the command
        if "--" not in argv:
            argv = []
        else:
            EXEC_OPTIONS.parse_args(argv[: argv.index("--")], namespace=args)
            argv = argv[argv.index("--") + 1 :]
    if not argv:
        raise SystemExit("shells: give the command after --, e.g. shells exec ID -- python3 -c 'print(1)'")
    stdin = sys.stdin.buffer.read() if args.stdin else None
    with connect() as client:
        result = client.get(args.id).commands.run(
            argv,
            env=key_values(args.env, "--env"),
            cwd=args.cwd,
            stdin=stdin,
            timeout=args.timeout,
            on_stdout=_writer(sys.stdout),
            on_stderr=_writer(sys.stderr),
        )
    return _finish(result, args.timeout)


def cmd_run(args: argparse.Namespace) -> int:
    code = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    with connect() as client:
        result = client.get(args.id).run_code(
            code,
            args.language,
            timeout=args.timeout,
            on_stdout=_writer(sys.stdout),
            on_stderr=_writer(sys.stderr),
        )
    return _finish(result, args.timeout)


def cmd_action(args: argparse.Namespace) -> int:
    with connect() as client:
        shell = client.get(args.id)
        record: Any
        if args.capability == "logs":
            record = text = shell.logs()
        elif args.capability == "snapshot":
            record = shell.snapshot(args.name)
            text = record.id
        elif args.capability == "fork":
            record = [c.info for c in shell.fork(args.count)]
            text = "\n".join(c.id for c in record)
        else:
            getattr(shell, args.capability)()
            record, text = shell.info, f"{shell.id}: {shell.info.state}"
    if args.json:
        print_json(record)
    else:
        print(text, end="" if args.capability == "logs" else "\n")
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    source, target = _REMOTE.fullmatch(args.source), _REMOTE.fullmatch(args.target)
    if (source is None) == (target is None):
        raise SystemExit("shells: exactly one side of cp is ID:PATH, e.g. shells cp data.csv sh_123:data.csv")
    with connect() as client:
        if source is not None:
            size = client.get(source[1]).files.download(source[2], args.target)
        else:
            assert target is not None
            size = client.get(target[1]).files.upload(args.source, target[2])
    print(f"{size} bytes", file=sys.stderr)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for shell_id in args.ids:
            client.get(shell_id).kill()
            print(f"{shell_id}: deleted")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    with connect() as client:
        events = client.get(args.id).events()
    for e in events:
        detail = f" {e.details}" if e.details else ""
        print(
            f"{e.at.isoformat()}  {e.door:<6} {e.principal:<8} {e.kind:<7} {e.action:<12} {e.outcome}{detail}"
        )
    return 0


SYNC_SECRET_VAR = "SHELLS_SYNC_SECRET"


def sync_option(url: str | None, credentials: str | None = None) -> dict[str, Any] | None:
    """``--sync http(s)://KEY_ID[:SECRET]@host[:port]/bucket[/prefix]`` as the ``sync`` of a create;
    without ``:SECRET`` in the URL (which other users of this machine can see in its process list)
    the secret comes from $SHELLS_SYNC_SECRET. With ``--sync-credentials NAME`` the URL has no key
    and the stored credentials of that name are used."""
    if url is None:
        return None
    from urllib.parse import quote, urlsplit

    from ..objects.store import S3Location

    parts = urlsplit(url)
    if credentials is not None:
        if parts.username:
            raise SystemExit("shells: --sync: no key in the URL with --sync-credentials")
        url = url.replace("://", "://stored:stored@", 1)  # parsed as a keyed URL; the keys are unused
    elif parts.username and parts.password is None and os.environ.get(SYNC_SECRET_VAR):
        secret = quote(os.environ[SYNC_SECRET_VAR], safe="")
        url = url.replace(f"{parts.username}@", f"{parts.username}:{secret}@", 1)
    try:
        where = S3Location.parse(url)
    except ValueError as exc:
        raise SystemExit(f"shells: --sync: {exc} (or KEY_ID@ with ${SYNC_SECRET_VAR} set)") from None
    keys = {
        "access_key_id": where.credentials.access_key_id,
        "secret_access_key": where.credentials.secret_access_key,
    }
    return {
        "endpoint": where.endpoint,
        "bucket": where.bucket,
        "prefix": where.prefix,
        "credentials": credentials if credentials is not None else keys,
    }


def cmd_sync(args: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.get(args.id).sync_status())
    return 0


def register(sub: Subparsers) -> None:
    sub.add_parser("info", help="what this server can run").set_defaults(func=cmd_info)

    s = sub.add_parser("create", help="create a shell and print its id")
    s.add_argument("--language", default=None, help="bash (default), node, python, rust or go")
    s.add_argument("--runtime", default=None, help="container (default), microvm or wasm")
    s.add_argument("--network", default=None, help="sealed (default), localhost or internet")
    s.add_argument("--allow", action="append", metavar="HOST:PORT", help="with internet: only these")
    s.add_argument("--net", action="append", metavar="NAME", help="attach to this private network")
    s.add_argument("--shape", default=None)
    s.add_argument("--region", default=None, help="where it runs (`shells info` lists the regions)")
    s.add_argument("--template", default=None)
    s.add_argument("--snapshot", default=None, help="create from this snapshot id")
    s.add_argument("--name", default=None)
    s.add_argument("--env", action="append", metavar="KEY=VALUE")
    s.add_argument("--label", action="append", metavar="KEY=VALUE")
    s.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS", help="pause when idle")
    s.add_argument("--secret", action="append", metavar="NAME", help="a secret it may use (internet)")
    s.add_argument(
        "--auto-resume",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="resume when a request reaches an exposed port while paused (default: on where it can pause)",
    )
    s.add_argument(
        "--sync",
        default=None,
        metavar="URL",
        help="mirror /workspace to http(s)://KEY_ID[:SECRET]@host[:port]/bucket[/prefix] "
        f"(the secret from ${SYNC_SECRET_VAR} when not in the URL)",
    )
    s.add_argument(
        "--sync-credentials",
        default=None,
        metavar="NAME",
        help="with --sync http(s)://host[:port]/bucket[/prefix]: the stored bucket credentials to use",
    )
    add_create_options(s)
    s.add_argument("--json", action="store_true", help="print the whole record")
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("sync", help="how far a shell's workspace sync is")
    s.add_argument("id")
    s.set_defaults(func=cmd_sync)

    s = sub.add_parser("ls", help="list shells")
    s.add_argument("--state", default=None)
    s.add_argument("--runtime", default=None)
    s.add_argument("--label", default=None, metavar="KEY[=VALUE]")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser("get", help="show one shell")
    s.add_argument("id")
    s.set_defaults(func=cmd_get)

    s = sub.add_parser("exec", help="run a command in a shell, streaming its output", parents=[EXEC_OPTIONS])
    s.add_argument("id")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    s.set_defaults(func=cmd_exec)

    s = sub.add_parser("run", help="run a file of code (or - for stdin) in a shell")
    s.add_argument("id")
    s.add_argument("file", metavar="FILE|-")
    s.add_argument("--language", default=None, help="default: the shell's language")
    s.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("action", help=", ".join(ACTIONS))
    s.add_argument("id")
    s.add_argument("capability", choices=ACTIONS)
    s.add_argument("--name", default=None, help="snapshot: its name")
    s.add_argument("--count", type=int, default=1, help="fork: how many copies")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_action)

    s = sub.add_parser("cp", help="copy a file into (LOCAL ID:PATH) or out of (ID:PATH LOCAL) a shell")
    s.add_argument("source")
    s.add_argument("target")
    s.set_defaults(func=cmd_cp)

    s = sub.add_parser("rm", help="delete shells")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_rm)

    s = sub.add_parser("events", help="a shell's audit trail")
    s.add_argument("id")
    s.set_defaults(func=cmd_events)
