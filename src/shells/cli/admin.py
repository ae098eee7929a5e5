"""``shells admin tenant create``, ``shells admin token create`` and ``shells audit``."""

from __future__ import annotations

import argparse
import sys

from .args import Subparsers, connect
from .node_commands import register_node_moves, register_recover
from .output import print_json


def cmd_tenant_create(args: argparse.Namespace) -> int:
    limits = {
        "max_shells": args.max_shells,
        "max_vcpus": args.max_vcpus,
        "max_memory_mib": args.max_memory_mib,
        "max_snapshots": args.max_snapshots,
        "requests_per_s": args.requests_per_s,
        "burst": args.burst,
    }
    with connect() as client:
        tenant = client.tenants.create(args.name, quotas={k: v for k, v in limits.items() if v is not None})
    if args.json:
        print_json(tenant)
    else:
        print(tenant.name)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    with connect() as client:
        token = client.tokens.create(
            [s for s in args.scopes.split(",") if s],
            tenant=args.tenant,
            principal=args.principal,
            expires_in_s=args.expires_in,
            kind=args.kind,
            e2b=args.e2b,
        )
    if args.json:
        print_json(token)
        return 0
    print(token.token)
    expiry = token.expires_at.isoformat() if token.expires_at else "never"
    print(
        f"{token.id} ({token.prefix}…) for {token.principal}@{token.tenant}, "
        f"expires {expiry}; the token is shown only now",
        file=sys.stderr,
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    with connect() as client:
        events = client.audit(
            shell=args.shell,
            actor=args.actor,
            action=args.action,
            door=args.door,
            outcome=args.outcome,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    if args.json:
        print_json(events)
        return 0
    for e in events:
        mark = " DESTRUCTIVE" if e.destructive else ""
        print(
            f"{e.at.isoformat()}  {e.door:<7} {e.principal:<12} {e.action:<16} {e.target or '-':<26} "
            f"{e.outcome}{mark}  req={e.request_id or '-'}"
        )
    return 0


def register(sub: Subparsers) -> None:
    admin = sub.add_parser("admin", help="tenants and tokens (admins)")
    groups = admin.add_subparsers(dest="admin_command", required=True)

    tenant = groups.add_parser("tenant", help="tenants (platform admin)").add_subparsers(
        dest="tenant_command", required=True
    )
    s = tenant.add_parser("create", help="create a tenant and print its name")
    s.add_argument("name")
    s.add_argument("--max-shells", type=int, default=None)
    s.add_argument("--max-vcpus", type=float, default=None)
    s.add_argument("--max-memory-mib", type=int, default=None)
    s.add_argument("--max-snapshots", type=int, default=None)
    s.add_argument("--requests-per-s", type=float, default=None, help="per-token request rate")
    s.add_argument("--burst", type=int, default=None, help="per-token request burst")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tenant_create)

    token = groups.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    s = token.add_parser("create", help="mint a token and print it (it is shown only once)")
    s.add_argument("--tenant", default=None, help="default: your own")
    s.add_argument("--principal", default=None, help="default: yourself")
    s.add_argument("--scopes", required=True, help="comma-separated, e.g. shells.read,shells.exec")
    s.add_argument("--expires-in", type=int, default=None, metavar="SECONDS")
    s.add_argument("--kind", default=None, help="person or service (for a new principal)")
    s.add_argument("--e2b", action="store_true", help="mint it in E2B's key form (e2b_…), see docs/e2b.md")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_token_create)

    node = groups.add_parser("node", help="a cluster's nodes (platform admin)").add_subparsers(
        dest="node_command", required=True
    )
    register_node_moves(node)
    register_recover(sub)

    s = sub.add_parser("audit", help="the tenant's audit trail (tenant admins)")
    for name in ("shell", "actor", "action", "door", "outcome"):
        s.add_argument(f"--{name}", default=None)
    s.add_argument("--since", default=None, help="ISO 8601 time")
    s.add_argument("--until", default=None, help="ISO 8601 time")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_audit)
