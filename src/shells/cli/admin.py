"""``shells admin tenant create``, ``shells admin token create`` and ``shells audit``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..sdk import Shells

DOOR = "cli"


def api_client() -> Shells:
    """The SDK client, announcing the CLI as its door so the audit trail says ``cli``."""
    from ..sdk import Shells

    client = Shells()
    client._http.headers["X-Shells-Door"] = DOOR
    return client


def cmd_tenant_create(args: argparse.Namespace) -> int:
    limits = {
        "max_shells": args.max_shells,
        "max_vcpus": args.max_vcpus,
        "max_memory_mib": args.max_memory_mib,
        "max_snapshots": args.max_snapshots,
        "requests_per_s": args.requests_per_s,
        "burst": args.burst,
    }
    body: dict[str, Any] = {"name": args.name, "quotas": {k: v for k, v in limits.items() if v is not None}}
    tenant = api_client()._json("POST", "/v1/tenants", json=body)
    print(json.dumps(tenant, indent=2) if args.json else tenant["name"])
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    scopes = [s for s in args.scopes.split(",") if s]
    body: dict[str, Any] = {"scopes": scopes}
    extra = {
        "tenant": args.tenant,
        "principal": args.principal,
        "expires_in_s": args.expires_in,
        "kind": args.kind,
    }
    body |= {k: v for k, v in extra.items() if v is not None}
    token = api_client()._json("POST", "/v1/tokens", json=body)
    if args.json:
        print(json.dumps(token, indent=2))
    else:
        print(token["token"])
        expiry = token["expires_at"] or "never"
        print(
            f"{token['id']} ({token['prefix']}…) for {token['principal']}@{token['tenant']}, "
            f"expires {expiry}; the token is shown only now",
            file=sys.stderr,
        )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    filters = {
        "shell": args.shell,
        "actor": args.actor,
        "action": args.action,
        "door": args.door,
        "outcome": args.outcome,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
    }
    params = {k: v for k, v in filters.items() if v is not None}
    events = api_client()._json("GET", "/v1/audit", params=params)["events"]
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    for e in events:
        mark = " DESTRUCTIVE" if e["destructive"] else ""
        print(
            f"{e['at']}  {e['door']:<7} {e['principal']:<12} {e['action']:<16} {e['target'] or '-':<26} "
            f"{e['outcome']}{mark}  req={e['request_id'] or '-'}"
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_token_create)

    s = sub.add_parser("audit", help="the tenant's audit trail (tenant admins)")
    for name in ("shell", "actor", "action", "door", "outcome"):
        s.add_argument(f"--{name}", default=None)
    s.add_argument("--since", default=None, help="ISO 8601 time")
    s.add_argument("--until", default=None, help="ISO 8601 time")
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_audit)
