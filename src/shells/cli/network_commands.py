"""``shells net ID``, ``shells network create | ls | rm | attach | detach``, ``shells port ID ...``."""

from __future__ import annotations

import argparse

from .args import Subparsers, connect
from .output import age, print_json, table


def cmd_net(args: argparse.Namespace) -> int:
    with connect() as client:
        shell = client.get(args.id)
        if args.mode or args.allow:
            status = shell.set_network(args.mode or "internet", args.allow)
        else:
            status = shell.network()
    if args.json:
        print_json(status)
        return 0
    print(f"mode: {status.policy.mode}")
    if status.policy.allow:
        print(f"allow: {', '.join(status.policy.allow)}")
    if status.networks:
        print(f"networks: {', '.join(str(n) for n in status.networks)}")
    for name, address in status.addresses.items():
        print(f"address {name}: {address}")
    if status.blocked:
        rows = [
            [b.destination, b.port or "-", b.protocol, b.count, b.last_seen or "-"] for b in status.blocked
        ]
        print(table(["BLOCKED", "PORT", "PROTO", "COUNT", "LAST SEEN"], rows))
    return 0


def cmd_network_create(args: argparse.Namespace) -> int:
    with connect() as client:
        network = client.networks.create(args.name)
    print(f"{network.name}  {network.cidr}")
    return 0


def cmd_network_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        networks = client.networks.list()
    if args.json:
        print_json(networks)
        return 0
    rows = [[n.name, n.cidr, len(n.shells), age(n.created_at)] for n in networks]
    print(table(["NAME", "CIDR", "SHELLS", "AGE"], rows))
    return 0


def cmd_network_rm(args: argparse.Namespace) -> int:
    with connect() as client:
        for name in args.names:
            client.networks.delete(name)
            print(f"{name}: deleted")
    return 0


def cmd_network_attach(args: argparse.Namespace) -> int:
    with connect() as client:
        client.networks.attach(args.name, args.id)
    print(f"{args.id}: attached to {args.name}")
    return 0


def cmd_network_detach(args: argparse.Namespace) -> int:
    with connect() as client:
        client.networks.detach(args.name, args.id)
    print(f"{args.id}: detached from {args.name}")
    return 0


def cmd_port_expose(args: argparse.Namespace) -> int:
    with connect() as client:
        port = client.get(args.id).ports.expose(args.port, public=args.public)
    print(port.url)
    if port.token:
        print(f"token: {port.token}")
    return 0


def cmd_port_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        ports = client.get(args.id).ports.list()
    print(table(["PORT", "URL", "PUBLIC"], [[p.port, p.url, "yes" if p.public else "no"] for p in ports]))
    return 0


def cmd_port_close(args: argparse.Namespace) -> int:
    with connect() as client:
        client.get(args.id).ports.close(args.port)
    print(f"{args.id}: port {args.port} closed")
    return 0


def register(sub: Subparsers) -> None:
    s = sub.add_parser("net", help="show a shell's network, or change it with --mode/--allow")
    s.add_argument("id")
    s.add_argument("--mode", default=None, help="sealed, localhost or internet")
    s.add_argument("--allow", action="append", metavar="HOST:PORT", help="with internet: only these")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_net)

    group = sub.add_parser("network", help="private networks between shells")
    nsub = group.add_subparsers(dest="network_command", required=True)
    s = nsub.add_parser("create", help="create a private network")
    s.add_argument("name")
    s.set_defaults(func=cmd_network_create)
    s = nsub.add_parser("ls", help="list private networks")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_network_ls)
    s = nsub.add_parser("rm", help="delete private networks")
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_network_rm)
    for verb, func in (("attach", cmd_network_attach), ("detach", cmd_network_detach)):
        s = nsub.add_parser(verb, help=f"{verb} a shell")
        s.add_argument("name")
        s.add_argument("id")
        s.set_defaults(func=func)

    group = sub.add_parser("port", help="expose a shell's ports")
    group.add_argument("id")
    psub = group.add_subparsers(dest="port_command", required=True)
    s = psub.add_parser("expose", help="make a port reachable from outside")
    s.add_argument("port", type=int)
    s.add_argument("--public", action="store_true", help="no token needed")
    s.set_defaults(func=cmd_port_expose)
    psub.add_parser("ls", help="list exposed ports").set_defaults(func=cmd_port_ls)
    s = psub.add_parser("close", help="stop exposing a port")
    s.add_argument("port", type=int)
    s.set_defaults(func=cmd_port_close)
