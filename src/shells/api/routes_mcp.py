"""The MCP door over HTTP (``mcp.http``): one route, so the endpoint table and the request context
(request id, audit row) see it like any other."""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request, Response

from ..mcp.http import PATH, McpHttp
from .contract import AUTHED, BODY, BodyRoute, errors

router = APIRouter(route_class=BodyRoute)
JSON_RPC = {"type": "object", "description": "A JSON-RPC 2.0 message: see docs/mcp.md."}


@router.post(
    PATH,
    response_model=None,
    summary="MCP (streamable HTTP): the agents' door",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": JSON_RPC}}}},
    responses={
        202: {"description": "A notification or response accepted."},
        **errors(*AUTHED, *BODY, 406, 415, 421),
    },
)
async def agent_invoke(request: Request) -> Response:
    """JSON-RPC messages of the Model Context Protocol (tools/list, tools/call, …); see docs/mcp.md.
    Needs a bearer token holding ``shells.agent.invoke``."""
    return await cast(McpHttp, request.app.state.mcp).invoke(request)
