"""The MCP door over HTTP (``mcp.http``): one route, so the endpoint table and the request context
(request id, audit row) see it like any other."""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from ..mcp.http import PATH, McpHttp
from .contract import AUTHED, BODY, BodyRoute, ErrorBody, errors

router = APIRouter(route_class=BodyRoute)
REFUSALS = errors(*AUTHED, *BODY, 406, 415, 421)


class JsonRpcFault(BaseModel):
    code: int = Field(description="The JSON-RPC error code, e.g. -32602 (invalid params).")
    message: str
    data: Any = None


class JsonRpcError(BaseModel):
    """What the MCP transport itself answers to a message it cannot take (the API's own refusals,
    such as a missing token, are ``ErrorBody``)."""

    jsonrpc: Literal["2.0"]
    id: str | int | None
    error: JsonRpcFault


JSON_RPC = {"type": "object", "description": "A JSON-RPC 2.0 message: see docs/mcp.md."}


@router.post(
    PATH,
    response_model=None,
    summary="MCP (streamable HTTP): the agents' door",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": JSON_RPC}}},
        "security": [{"bearer": []}],
    },
    responses={
        202: {"description": "A notification or response accepted."},
        **{status: {**answer, "model": ErrorBody | JsonRpcError} for status, answer in REFUSALS.items()},
    },
)
async def agent_invoke(request: Request) -> Response:
    """JSON-RPC messages of the Model Context Protocol (tools/list, tools/call, …); see docs/mcp.md.
    Needs a bearer token holding ``shells.agent.invoke``."""
    return await cast(McpHttp, request.app.state.mcp).invoke(request)
