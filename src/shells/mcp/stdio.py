"""``shells mcp``: the MCP server on standard input and output, for agents that start their tools
as processes. It is a client of a Shells server (``SHELLS_BASE_URL``, ``SHELLS_API_TOKEN``) through
the SDK with door ``mcp``, so the server enforces ``shells.agent.invoke`` and every permission."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from .gateway import Gateway
from .remote import SdkGateway
from .server import build_server
from .tools import ToolSpec


async def serve_stdio(base_url: str | None = None, token: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes them.

    Raises:
        Unauthenticated: no token was given and ``SHELLS_API_TOKEN`` is not set.
    """
    gateway = SdkGateway(base_url, token)

    @asynccontextmanager
    async def open_call(
        ctx: ServerRequestContext[Any], tool: ToolSpec, arguments: dict[str, Any]
    ) -> AsyncIterator[Gateway]:
        yield gateway

    server = build_server(open_call)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await gateway.aclose()
