"""An agent uses the tenant's secrets by name through MCP (both transports) and never sees a value."""

from __future__ import annotations

import secrets

import pytest

from .harness import ServerProcess
from .test_mcp import TRANSPORTS, connect, ok

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_agent_lists_secrets_by_name_and_creates_a_shell_with_one(
    server: ServerProcess, transport: str
) -> None:
    name = "MCP_" + secrets.token_hex(4).upper()
    value = "real" + secrets.token_hex(16)
    with server.client() as admin:
        admin.secrets.create(name, value, ["api.example.org"])
        try:
            async with connect(server, server.token, transport) as client:
                listed = await client.call_tool("shells_secrets_list", {})
                assert f"{name}: for api.example.org" in str(listed.content) and value not in str(listed)
                body = {"language": "python", "network": {"mode": "internet"}, "secrets": [name]}
                sid = ok(await client.call_tool("shells_create", body))["shell"]["id"]
                try:
                    out = ok(
                        await client.call_tool("shells_exec", {"shell_id": sid, "command": f"echo ${name}"})
                    )
                    assert out["stdout"].startswith("shells-secret-") and value not in str(out)
                    refused = await client.call_tool(
                        "shells_create", {"language": "python", "secrets": [name]}
                    )
                    assert refused.is_error and "invalid_request" in str(refused.content)
                finally:
                    await client.call_tool("shells_delete", {"shell_id": sid})
        finally:
            admin.secrets.delete(name)
