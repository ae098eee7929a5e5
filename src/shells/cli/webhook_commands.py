"""``shells webhook add | ls | rm | log | test``: callbacks on your shells' lifecycle events."""

from __future__ import annotations

import argparse

from .args import Subparsers, connect
from .output import age, print_json, table


def cmd_add(args: argparse.Namespace) -> int:
    with connect() as client:
        hook = client.webhooks.create(args.url, events=args.event or ["*"], secret=args.secret)
    if args.json:
        print_json(hook)
    else:
        print(hook.id)
        print(f"secret: {hook.secret}  (shown once: verify Shells-Webhook-Signature with it)")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        hooks = client.webhooks.list()
    if args.json:
        print_json(hooks)
        return 0
    rows = [[h.id, h.url, ",".join(h.events), age(h.created_at)] for h in hooks]
    print(table(["ID", "URL", "EVENTS", "AGE"], rows))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for hook_id in args.ids:
            client.webhooks.delete(hook_id)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    with connect() as client:
        log = client.webhooks.deliveries(args.id, args.limit)
    if args.json:
        print_json(log)
        return 0
    rows = [
        [
            d.id,
            d.event,
            d.shell_id or "-",
            d.state,
            d.attempts,
            d.last_status or "-",
            d.last_error[:60] or "-",
        ]
        for d in log
    ]
    print(table(["ID", "EVENT", "SHELL", "STATE", "TRIES", "STATUS", "ERROR"], rows))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    with connect() as client:
        delivery = client.webhooks.test(args.id)
    print(f"test delivery {delivery.id} queued: shells webhook log {args.id}")
    return 0


def register(sub: Subparsers) -> None:
    group = sub.add_parser("webhook", help="callbacks on your shells' lifecycle events")
    wsub = group.add_subparsers(dest="webhook_command", required=True)
    s = wsub.add_parser("add", help="register a URL")
    s.add_argument("url")
    s.add_argument("--event", action="append", metavar="EVENT", help="created, running, ... (default: all)")
    s.add_argument("--secret", default=None, help="the signing secret (default: generated)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_add)
    s = wsub.add_parser("ls", help="list webhooks")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ls)
    s = wsub.add_parser("rm", help="delete webhooks")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_rm)
    s = wsub.add_parser("log", help="a webhook's deliveries, newest first")
    s.add_argument("id")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_log)
    s = wsub.add_parser("test", help="send a test delivery now")
    s.add_argument("id")
    s.set_defaults(func=cmd_test)
