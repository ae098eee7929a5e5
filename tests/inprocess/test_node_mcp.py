"""The MCP tools through the streamable-HTTP door, with the official client, on the fake node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from shells.sdk import AsyncShells

from ..support.inprocess import BASE_URL, Instance

pytestmark = pytest.mark.anyio
AGENT = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files"]


@asynccontextmanager
async def agent(instance: Instance, token: str) -> AsyncIterator[Client]:
    transport = httpx2.ASGITransport(app=instance.app)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, base_url=BASE_URL) as http,
        Client(streamable_http_client(f"{BASE_URL}/api/agent/invoke", http_client=http)) as client,
    ):
        yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def test_an_agent_creates_runs_writes_reads_and_deletes_a_shell(
    instance: Instance, admin: AsyncShells
) -> None:
    await admin.tenants.create("bots")
    minted = await admin.tokens.create([*AGENT, "shells.agent.invoke"], tenant="bots", principal="bot")
    async with agent(instance, minted.token) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"shells_create", "shells_exec", "shells_files_write", "shells_files_read"} <= names
        sid = ok(await client.call_tool("shells_create", {"language": "python"}))["shell"]["id"]
        ran = ok(await client.call_tool("shells_exec", {"shell_id": sid, "command": "echo hi; exit 2"}))
        assert (ran["stdout"], ran["exit_code"]) == ("hi\n", 2)
        args = {"shell_id": sid, "path": "/workspace/a.txt", "content": "written by a tool"}
        ok(await client.call_tool("shells_files_write", args))
        read = ok(await client.call_tool("shells_files_read", {"shell_id": sid, "path": "/workspace/a.txt"}))
        assert read["content"] == "written by a tool"
        paused = ok(await client.call_tool("shells_action", {"shell_id": sid, "action": "pause"}))
        assert paused["shell"]["state"] == "paused"
        forked = ok(await client.call_tool("shells_action", {"shell_id": sid, "action": "fork", "count": 1}))
        assert len(forked["result"]["shells"]) == 1, forked
        ok(await client.call_tool("shells_delete", {"shell_id": sid}))
    boss = await admin.tokens.create(["tenant.admin"], tenant="bots", principal="boss")
    async with instance.client(boss.token) as auditor:
        doors = {(e.action, e.door) for e in await auditor.audit(shell=sid)}
    assert {("create", "mcp"), ("exec", "mcp"), ("fork", "mcp")} <= doors, doors


async def test_another_tenants_shell_is_the_same_tool_error_as_a_missing_one(
    instance: Instance, admin: AsyncShells
) -> None:
    theirs = await admin.create("python")
    await admin.tenants.create("bots")
    minted = await admin.tokens.create([*AGENT, "shells.agent.invoke"], tenant="bots", principal="bot")
    async with agent(instance, minted.token) as client:
        for shell_id in (theirs.id, "sh_doesnotexist"):
            refused = await client.call_tool("shells_exec", {"shell_id": shell_id, "command": "true"})
            assert refused.is_error and isinstance(refused.structured_content, dict)
            assert refused.structured_content["error"]["code"] == "shell_not_found"


async def test_a_token_without_the_agent_entitlement_cannot_use_the_door(
    instance: Instance, admin: AsyncShells
) -> None:
    await admin.tenants.create("bots")
    minted = await admin.tokens.create(AGENT, tenant="bots", principal="bot")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=instance.app), base_url=BASE_URL
    ) as http:
        answer = await http.post(
            "/api/agent/invoke",
            headers={
                "Authorization": f"Bearer {minted.token}",
                "Accept": "application/json, text/event-stream",
            },
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert answer.status_code == 403
    assert answer.json()["error"]["details"] == {"scope": "shells.agent.invoke"}
