"""``shells mcp``: the MCP server over stdio, for an agent's configuration (see docs/mcp.md)."""

from __future__ import annotations

import argparse

import anyio

from .args import Subparsers


def cmd_mcp(args: argparse.Namespace) -> int:
    from ..mcp.stdio import serve_stdio

    anyio.run(serve_stdio)
    return 0


def register(sub: Subparsers) -> None:
    s = sub.add_parser(
        "mcp",
        help="serve the MCP tools on stdin/stdout (agents); uses SHELLS_BASE_URL and SHELLS_API_TOKEN",
    )
    s.set_defaults(func=cmd_mcp)
