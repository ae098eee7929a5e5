"""An agent lists the tenant's volumes and creates a shell with one through MCP (both transports)."""

from __future__ import annotations

import secrets

import pytest

from .harness import ServerProcess
from .test_mcp import TRANSPORTS, connect, ok

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_agent_lists_volumes_and_attaches_one(server: ServerProcess, transport: str) -> None:
    name = "mcp-" + secrets.token_hex(3)
    with server.client() as admin:
        admin.volumes.create(name, 1)
        try:
            async with connect(server, server.token, transport) as client:
                listed = await client.call_tool("shells_volumes_list", {})
                assert f"{name}: 1 GiB, 0 shell(s)" in str(listed.content)
                body = {"language": "python", "volumes": [{"name": name, "path": "/v"}]}
                sid = ok(await client.call_tool("shells_create", body))["shell"]["id"]
                try:
                    out = ok(
                        await client.call_tool("shells_exec", {"shell_id": sid, "command": "touch /v/x"})
                    )
                    assert out["exit_code"] == 0, out
                    held = ok(await client.call_tool("shells_volumes_list", {}))["volumes"]
                    assert [v["attached"] for v in held if v["name"] == name] == [
                        [{"shell_id": sid, "read_only": False}]
                    ]
                finally:
                    await client.call_tool("shells_delete", {"shell_id": sid})
        finally:
            admin.volumes.delete(name)
