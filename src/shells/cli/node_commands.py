"""``shells admin node drain|uncordon NODE`` and ``shells recover SHELL``: moving shells between a
cluster's nodes (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys

from .args import Subparsers, connect
from .output import print_json


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
    """``drain`` and ``uncordon`` under ``shells admin node`` (``node``: its subparsers)."""
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
