"""``shells``: the command line. Every command goes through the SDK, except ``serve``, ``prepare`` and
``purge``, which run server code on this host."""

from __future__ import annotations

import argparse
import sys

from ..domain.errors import ShellsError
from . import (
    admin,
    mcp_command,
    network_commands,
    secret_commands,
    server,
    shell_commands,
    storage_commands,
    template_commands,
    term,
    top_command,
    usage_commands,
    webhook_commands,
)

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shells",
        description="Sandboxes for untrusted code. Commands reach the server at SHELLS_BASE_URL "
        "with the token in SHELLS_API_TOKEN.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (
        server,
        shell_commands,
        template_commands,
        network_commands,
        secret_commands,
        storage_commands,
        admin,
        term,
        mcp_command,
        usage_commands,
        webhook_commands,
        top_command,
    ):
        module.register(sub)
    return parser


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
