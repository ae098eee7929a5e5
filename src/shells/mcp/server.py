"""The MCP server of both transports: ``tools/list`` and ``tools/call`` over the tool table.

A transport supplies ``open_call``: for each call it yields the ``Gateway`` to run the tool with and
is told how the call ended (the HTTP transport records it in the audit trail). Arguments are checked
against the tool's input schema first; a ``ShellsError`` from anywhere becomes a tool error with the
REST error code, an unexpected failure one that names the request id to look up in the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import jsonschema
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from .. import __version__
from ..domain.errors import InvalidRequest, RuntimeFailure, ShellsError
from .gateway import Gateway
from .shaping import failed
from .tools import BY_NAME, TOOLS, ToolSpec

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Shells runs code in isolated sandboxes ('shells'). Create one with shells_create (language, "
    "runtime class, network), run commands with shells_exec or snippets with shells_run_code, move "
    "files with shells_files_*, and delete it with shells_delete when done. Errors carry the Shells "
    "REST API's error code (shell_not_found, invalid_state, quota_exceeded, …)."
)

OpenCall = Callable[
    [ServerRequestContext[Any], ToolSpec, dict[str, Any]], AbstractAsyncContextManager[Gateway]
]
"""``open_call(ctx, tool, arguments)``: the gateway for one call, as an async context manager that
sees the call's exception, if any."""


def check_arguments(tool: ToolSpec, arguments: dict[str, Any]) -> None:
    """Refuse arguments the tool's input schema does not allow, naming the first problem."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(tool.input_schema).iter_errors(arguments)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "arguments"
        raise InvalidRequest(
            f"Invalid arguments for {tool.name}: {where}: {error.message}.", {"field": where}
        )


def build_server(open_call: OpenCall) -> Server[Any]:
    listing = types.ListToolsResult(tools=[t.to_mcp() for t in TOOLS])

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:
            known = ", ".join(BY_NAME)
            return failed(InvalidRequest(f"There is no tool '{params.name}'; the tools are: {known}."))
        arguments = dict(params.arguments or {})
        try:
            async with open_call(ctx, tool, arguments) as gateway:
                check_arguments(tool, arguments)
                return await tool.run(gateway, arguments)
        except ShellsError as exc:
            return failed(exc)
        except Exception:
            log.exception("tool %s failed", tool.name)
            return failed(RuntimeFailure("The tool failed inside Shells; the server log has the cause."))

    return Server(
        "shells",
        version=__version__,
        title="Shells",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
