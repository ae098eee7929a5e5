"""``shells``: the command line, built on the SDK (plus ``serve``/``prepare``, which run a server)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain.errors import ShellsError
from . import admin, term

EXIT_ERROR = 2


def _kv(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"shells: {what} must look like KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _age(iso: str) -> str:
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    return "\n".join(lines)


def _client() -> Any:
    return admin.api_client()


def cmd_serve(args: argparse.Namespace) -> int:
    from ..server import serve
    from ..settings import Settings

    serve(
        Settings.from_env(
            data_dir=args.data_dir, host=args.host, port=args.port, warm_pool_size=args.warm_pool
        )
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Build and import the base template without serving (``make up`` runs this first)."""
    import anyio

    from ..runtime.container.backend import ContainerBackend
    from ..settings import Settings

    backend = ContainerBackend(Settings.from_env(data_dir=args.data_dir))
    anyio.run(backend.prepare)
    print("templates ready:", ", ".join(backend.templates()))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Destroy every shell and host object of one instance (its records stay in the database)."""
    import anyio

    from ..runtime.container.backend import ContainerBackend
    from ..settings import Settings

    if not args.yes:
        raise SystemExit("shells: purge destroys every shell of the instance; add --yes to confirm")
    anyio.run(ContainerBackend(Settings.from_env(data_dir=args.data_dir)).purge)
    print("purged")
    return 0


def cmd_info(_: argparse.Namespace) -> int:
    print(json.dumps(_client().info(), indent=2))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    shell = _client().create(
        args.language,
        runtime=args.runtime,
        network=args.network,
        shape=args.shape,
        template=args.template,
        snapshot=args.snapshot,
        name=args.name,
        env=_kv(args.env, "--env"),
        labels=_kv(args.label, "--label"),
    )
    print(json.dumps(shell, indent=2) if args.json else shell["id"])
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    shells = _client().list(state=args.state, runtime=args.runtime, label=args.label)
    if args.json:
        print(json.dumps(shells, indent=2))
        return 0
    header = ["ID", "NAME", "STATE", "RUNTIME", "LANGUAGE", "NETWORK", "SHAPE", "REGION", "AGE"]
    rows = [
        [
            s["id"],
            s["name"] if s["name"] != s["id"] else "-",
            s["state"],
            s["runtime"],
            s["language"],
            s["network"]["mode"],
            s["shape"],
            s["region"],
            _age(s["created_at"]),
        ]
        for s in shells
    ]
    print(_table(rows, header))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    print(json.dumps(_client().get(args.id), indent=2))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv and args.argv[0] == "--" else args.argv
    if not argv:
        raise SystemExit("shells: give the command after --, e.g. shells exec ID -- python3 -c 'print(1)'")
    env = _kv(args.env, "--env")
    stdin = sys.stdin.read() if args.stdin else None
    code = 1
    for event in _client().exec_stream(
        args.id, argv, env=env or None, cwd=args.cwd, stdin=stdin, timeout_s=args.timeout
    ):
        kind = event["type"]
        if kind in ("stdout", "stderr"):
            stream = sys.stdout if kind == "stdout" else sys.stderr
            stream.write(event["data"])
            stream.flush()
        elif kind == "exit":
            code = int(event["exit_code"])
            if event.get("timed_out"):
                print(f"shells: command timed out after {args.timeout or 'the default'} s", file=sys.stderr)
            if event.get("truncated"):
                print("shells: output was truncated at the server's cap", file=sys.stderr)
        elif kind == "error":
            err = event["error"]
            print(f"shells: {err['code']}: {err['message']}", file=sys.stderr)
            code = EXIT_ERROR
    return code


def cmd_action(args: argparse.Namespace) -> int:
    out = _client().action(args.id, args.capability)
    if args.json:
        print(json.dumps(out, indent=2))
    elif "logs" in out["result"]:
        sys.stdout.write(out["result"]["logs"])
    elif "snapshot" in out["result"]:
        print(out["result"]["snapshot"]["id"])
    else:
        print(f"{out['shell']['id']}: {out['shell']['state']}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    client = _client()
    for shell_id in args.ids:
        client.delete(shell_id)
        print(f"{shell_id}: deleted")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    for e in _client().events(args.id):
        detail = f" {json.dumps(e['details'])}" if e["details"] else ""
        print(
            f"{e['at']}  {e['door']:<6} {e['principal']:<8} {e['kind']:<7} {e['action']:<12} "
            f"{e['outcome']}{detail}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shells", description="Sandboxes for untrusted code.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a Shells server")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--warm-pool", type=int, default=None, help="pre-started shells kept ready (default 2)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("prepare", help="prepare the host and build the base template, then exit")
    s.add_argument("--data-dir", type=Path, default=None)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("purge", help="destroy every shell and host object of an instance (server stopped)")
    s.add_argument("--data-dir", type=Path, default=None)
    s.add_argument("--yes", action="store_true")
    s.set_defaults(func=cmd_purge)

    sub.add_parser("info", help="what this server can run").set_defaults(func=cmd_info)

    s = sub.add_parser("create", help="create a shell and print its id")
    s.add_argument("--language", default="bash", help="bash, node, python, rust or go")
    s.add_argument("--runtime", default=None, help="container (default), microvm or wasm")
    s.add_argument("--network", default=None, help="sealed (default), localhost or internet")
    s.add_argument("--shape", default=None)
    s.add_argument("--template", default=None)
    s.add_argument("--snapshot", default=None, help="create from this snapshot id")
    s.add_argument("--name", default=None)
    s.add_argument("--env", action="append", metavar="KEY=VALUE")
    s.add_argument("--label", action="append", metavar="KEY=VALUE")
    s.add_argument("--json", action="store_true", help="print the whole record")
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("ls", help="list shells")
    s.add_argument("--state", default=None)
    s.add_argument("--runtime", default=None)
    s.add_argument("--label", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser("get", help="show one shell")
    s.add_argument("id")
    s.set_defaults(func=cmd_get)

    s = sub.add_parser("exec", help="run a command in a shell, streaming its output")
    s.add_argument("id")
    s.add_argument("--env", action="append", metavar="KEY=VALUE")
    s.add_argument("--cwd", default=None)
    s.add_argument("--timeout", type=float, default=None)
    s.add_argument("--stdin", action="store_true", help="send this process's stdin to the command")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_exec)

    s = sub.add_parser("action", help="logs, restart, snapshot, stop, start, reinstall_os, wipe_state")
    s.add_argument("id")
    s.add_argument("capability")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_action)

    s = sub.add_parser("rm", help="delete shells")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_rm)

    s = sub.add_parser("events", help="a shell's audit trail")
    s.add_argument("id")
    s.set_defaults(func=cmd_events)

    admin.register(sub)
    term.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ShellsError as exc:
        print(f"shells: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
