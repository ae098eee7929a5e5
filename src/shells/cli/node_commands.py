"""``shells admin node ls|drain|uncordon`` and ``shells recover SHELL``: a cluster's nodes and
moving shells between them (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys

from .args import Subparsers, connect
from .output import print_json


def cmd_node_ls(args: argparse.Namespace) -> int:
    with connect() as client:
        nodes = client.nodes.list()
    if args.json:
        print_json(nodes)
        return 0
    print(f"{'NAME':<16} {'REGION':<10} {'ZONE':<10} {'CLASSES':<24} {'ACCEL':<5} {'STATE':<9} "
          f"{'SHELLS':>6} {'CPU FREE':>8} {'MEM FREE':>10} {'DISK FREE':>10}")  # fmt: skip
    for n in nodes:
        state = n.state + (",cordoned" if n.cordoned else "")
        print(
            f"{n.name:<16} {n.region or '-':<10} {n.zone or '-':<10} {','.join(n.classes) or '-':<24} "
            f"{n.accel or '-':<5} {state:<9} {n.shells:>6} {_free(n.cpu_free, ''):>8} "
            f"{_free(n.memory_free_mib, ' MiB'):>10} {_free(n.disk_free_mib, ' MiB'):>10}"
        )
        if n.reason:
            print(f"  {n.reason}")
    return 0


def _free(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:g}{unit}"


def cmd_node_drain(args: argparse.Namespace) -> int:
    with connect() as client:
        report = client.nodes.drain(args.node)
    if args.json:
        print_json(report)
    else:
        print(f"node {report.node} is cordoned: no new shells go there")
        for moved in report.moved:
            print(f"moved {moved['shell']} to {moved['to']}")
        for left in report.left:
            print(f"left  {left['shell']}: {left['reason']}")
    return 0 if not report.left else 3


def cmd_node_uncordon(args: argparse.Namespace) -> int:
    with connect() as client:
        was = client.nodes.uncordon(args.node)
    print(f"node {args.node} takes new shells again" + ("" if was else " (it was not cordoned)"))
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    with connect() as client:
        info = client.get(args.shell).recover()
    if args.json:
        print_json(info)
    else:
        print(f"{info.id} is {info.state} on node {info.node}: {info.state_reason}", file=sys.stderr)
    return 0


def register_node_moves(node: Subparsers) -> None:
    """``ls``, ``drain`` and ``uncordon`` under ``shells admin node`` (``node``: its subparsers)."""
    s = node.add_parser("ls", help="every node: region, classes, load and state")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_node_ls)
    s = node.add_parser(
        "drain",
        help="cordon a node and move its paused and stopped shells to other nodes (exit 3 if any stay)",
    )
    s.add_argument("node")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_node_drain)
    s = node.add_parser("uncordon", help="let new shells be placed on a node again")
    s.add_argument("node")
    s.set_defaults(func=cmd_node_uncordon)


def register_recover(sub: Subparsers) -> None:
    s = sub.add_parser("recover", help="start a lost shell again on another node from the object store")
    s.add_argument("shell")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_recover)
