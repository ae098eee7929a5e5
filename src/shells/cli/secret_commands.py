"""``shells secret create | ls | get | update | rm``: tenant secrets. A value is read from standard
input (or a prompt that does not echo), never from the command line, where ``ps`` would show it."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..domain.errors import InvalidRequest
from .args import Subparsers, connect
from .output import age, print_json, table


def _read_value() -> str:
    tty = sys.stdin.isatty()
    value = getpass.getpass("value: ") if tty else sys.stdin.read().removesuffix("\n")
    if not value:
        raise InvalidRequest("The secret's value is read from standard input, and it was empty.")
    return value


def cmd_secret_create(args: argparse.Namespace) -> int:
    value = _read_value()
    with connect() as client:
        secret = client.secrets.create(args.name, value, args.host or [], header=args.header)
    print(f"{secret.name}: created for {', '.join(secret.hosts)}")
    return 0


def cmd_secret_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        found = client.secrets.list()
    if args.json:
        print_json(found)
        return 0
    rows = [[s.name, ", ".join(s.hosts), s.header or "-", s.version, age(s.updated_at)] for s in found]
    print(table(["NAME", "HOSTS", "HEADER", "VERSION", "UPDATED"], rows))
    return 0


def cmd_secret_get(args: argparse.Namespace) -> int:
    with connect() as client:
        print_json(client.secrets.get(args.name))
    return 0


def cmd_secret_update(args: argparse.Namespace) -> int:
    value = _read_value() if args.value else None
    with connect() as client:
        secret = client.secrets.update(args.name, value=value, hosts=args.host, header=args.header)
    print(f"{secret.name}: version {secret.version}, for {', '.join(secret.hosts)}")
    return 0


def cmd_secret_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for name in args.names:
            client.secrets.delete(name)
            print(f"{name}: deleted")
    return 0


def register(sub: Subparsers) -> None:
    group = sub.add_parser("secret", help="secrets shells use at egress without ever holding them")
    ssub = group.add_subparsers(dest="secret_command", required=True)
    s = ssub.add_parser("create", help="store a secret (its value read from standard input)")
    s.add_argument("name")
    s.add_argument("--host", action="append", metavar="NAME", help="a host it may go to (*.x.org: below)")
    s.add_argument("--header", default=None, help="only put it into this request header")
    s.set_defaults(func=cmd_secret_create)
    s = ssub.add_parser("ls", help="list secrets (never their values)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_secret_ls)
    s = ssub.add_parser("get", help="show one secret (never its value)")
    s.add_argument("name")
    s.set_defaults(func=cmd_secret_get)
    s = ssub.add_parser("update", help="rotate (--value, from standard input) or change hosts or header")
    s.add_argument("name")
    s.add_argument("--value", action="store_true", help="read a new value from standard input")
    s.add_argument("--host", action="append", metavar="NAME", help="replace the hosts")
    s.add_argument("--header", default=None)
    s.set_defaults(func=cmd_secret_update)
    s = ssub.add_parser("rm", help="delete secrets")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_secret_rm)
