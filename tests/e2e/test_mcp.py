"""The MCP server against a real Shells server, through the official MCP client of the same SDK over
both transports (streamable HTTP at /api/agent/invoke, and ``shells mcp`` on stdio), and through
the MCP Inspector's command line, a client written by others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import websockets.sync.client
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from shells.domain.ids import new_id

from .harness import ServerProcess
from .tenancy import MEMBER, Caller, Tenancy, create_shell, error

pytestmark = pytest.mark.anyio

AGENT = [*MEMBER, "shells.agent.invoke"]
ENDPOINT = "/api/agent/invoke"
REPO = Path(__file__).resolve().parents[2]
TRANSPORTS = ["http", "stdio"]
TOOLS = {
    "shells_runtimes", "shells_list", "shells_create", "shells_delete", "shells_action", "shells_term",
    "shells_exec", "shells_run_code", "shells_files_read", "shells_files_write", "shells_files_list",
    "shells_secrets_list", "shells_volumes_list", "shells_bucket_credentials_list",
    "shells_metrics",
}  # fmt: skip


@pytest.fixture(scope="module")
def agent(tenancy: Tenancy) -> Caller:
    """An agent's token in a tenant of its own: every member scope and ``shells.agent.invoke``."""
    return tenancy.caller(tenancy.tenant("agents"), "agent", AGENT)


@asynccontextmanager
async def connect(server: ServerProcess, token: str, transport: str) -> AsyncIterator[Client]:
    """An official MCP client connected to the server through ``transport`` with ``token``."""
    if transport == "http":
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=300) as http,
            Client(streamable_http_client(server.url + ENDPOINT, http_client=http)) as client,
        ):
            yield client
        return
    env = {"PATH": os.environ["PATH"], "SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": token}
    params = StdioServerParameters(command=sys.executable, args=["-m", "shells.cli.main", "mcp"], env=env)
    async with Client(params, read_timeout_seconds=300) as client:
        yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    assert not result.is_error, text
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def tool_error(result: CallToolResult, code: str) -> dict[str, Any]:
    assert result.is_error
    assert isinstance(result.structured_content, dict)
    err = dict(result.structured_content["error"])
    assert err["code"] == code, err
    assert result.content[0].text.startswith(f"{code}: ")  # type: ignore[union-attr]
    return err


def text(result: CallToolResult) -> str:
    return str(result.content[0].text)  # type: ignore[union-attr]


# the tools -----------------------------------------------------------------------------------------


async def test_the_tools_are_listed_with_schemas_and_honest_annotations(
    server: ServerProcess, agent: Caller
) -> None:
    async with connect(server, agent.token, "http") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert tool.description and tool.input_schema["type"] == "object"
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.annotations is not None
    hints = {
        name: (t.annotations.read_only_hint, t.annotations.destructive_hint)  # type: ignore[union-attr]
        for name, t in listed.items()
    }
    for read_only in (
        "shells_runtimes",
        "shells_list",
        "shells_files_read",
        "shells_files_list",
        "shells_metrics",
    ):
        assert hints[read_only] == (True, False)
    assert hints["shells_create"] == hints["shells_term"] == (False, False)
    for destructive in ("shells_delete", "shells_action", "shells_exec", "shells_files_write"):
        assert hints[destructive] == (False, True)
    assert "wipe_state (DESTRUCTIVE" in json.dumps(listed["shells_action"].input_schema)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_agent_creates_runs_writes_reads_snapshots_wipes_and_deletes_a_shell(
    server: ServerProcess, agent: Caller, transport: str
) -> None:
    async with connect(server, agent.token, transport) as client:
        matrix = ok(await client.call_tool("shells_runtimes", {}))["runtimes"]
        assert {"language": "python", "runtime": "container", "available": True}.items() <= next(
            r for r in matrix if (r["language"], r["runtime"]) == ("python", "container")
        ).items()
        shell = ok(await client.call_tool("shells_create", {"language": "python", "labels": {"by": "mcp"}}))
        sid = shell["shell"]["id"]
        try:
            assert shell["shell"]["state"] == "running"
            listed = ok(await client.call_tool("shells_list", {"label": "by=mcp"}))
            assert sid in {s["id"] for s in listed["shells"]}

            ran = await client.call_tool(
                "shells_exec", {"shell_id": sid, "command": "echo out; echo err >&2; exit 3"}
            )
            assert (ok(ran)["stdout"], ok(ran)["stderr"], ok(ran)["exit_code"]) == ("out\n", "err\n", 3)
            assert text(ran).startswith("exit code 3")
            argv = ok(
                await client.call_tool("shells_exec", {"shell_id": sid, "argv": ["printf", "%s", "a b"]})
            )
            assert argv["stdout"] == "a b"
            code = ok(await client.call_tool("shells_run_code", {"shell_id": sid, "code": "print(6 * 7)"}))
            assert (code["stdout"], code["exit_code"]) == ("42\n", 0)

            written = ok(await client.call_tool(
                "shells_files_write", {"shell_id": sid, "path": "notes.txt", "content": "hello from an agent"}
            ))  # fmt: skip
            assert written["size"] == len("hello from an agent")
            read = ok(
                await client.call_tool("shells_files_read", {"shell_id": sid, "path": "/workspace/notes.txt"})
            )
            assert (read["content"], read["truncated"]) == ("hello from an agent", False)
            first = {"shell_id": sid, "path": "notes.txt", "max_bytes": 5, "encoding": "base64"}
            head = ok(await client.call_tool("shells_files_read", first))
            assert (head["content"], head["truncated"]) == ("aGVsbG8=", True)
            names = {
                e["name"]
                for e in ok(await client.call_tool("shells_files_list", {"shell_id": sid}))["entries"]
            }
            assert "notes.txt" in names

            snap = await client.call_tool(
                "shells_action", {"shell_id": sid, "action": "snapshot", "name": "before"}
            )
            assert ok(snap)["result"]["snapshot"]["id"].startswith("snap_") and not ok(snap)["destructive"]
            assert "DESTRUCTIVE" not in text(snap)
            paused = await client.call_tool("shells_action", {"shell_id": sid, "action": "pause"})
            assert "container" in tool_error(paused, "action_not_supported")["message"]
            wiped = await client.call_tool("shells_action", {"shell_id": sid, "action": "wipe_state"})
            assert ok(wiped)["destructive"] and "DESTRUCTIVE:" in text(wiped)
            gone = await client.call_tool("shells_files_read", {"shell_id": sid, "path": "notes.txt"})
            tool_error(gone, "file_not_found")

            term = await client.call_tool("shells_term", {"shell_id": sid, "ttl_s": 60})
            token = ok(term)["token"]
            assert token.startswith("term_") and token not in text(term) and token[-4:] in text(term)
            with websockets.sync.client.connect(f"{ok(term)['url']}?token={token}") as ws:
                assert json.loads(ws.recv(timeout=30))["type"] == "ready"  # the whole token works
        finally:
            deleted = await client.call_tool("shells_delete", {"shell_id": sid})
        assert ok(deleted) == {"deleted": sid} and "destructive" in text(deleted)
        tool_error(
            await client.call_tool("shells_exec", {"shell_id": sid, "command": "true"}), "shell_not_found"
        )


async def test_the_one_line_stdio_config_creates_a_go_microvm_runs_code_wipes_and_deletes_it(
    server: ServerProcess, agent: Caller, built_templates: dict[str, Any]
) -> None:
    """The issue's walk-through: an agent with only the README's stdio config and a token, on a
    server whose operator has built the go preset (``shells template build go:1``)."""
    async with connect(server, agent.token, "stdio") as client:
        created = ok(await client.call_tool("shells_create", {"language": "go", "runtime": "microvm"}))
        sid = created["shell"]["id"]
        try:
            assert created["shell"]["runtime"] == "microvm" and created["shell"]["state"] == "running"
            assert created["shell"]["runtime_details"]["accel"] in {"kvm", "tcg"}
            program = 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello from", 6*7) }\n'
            ran = ok(await client.call_tool("shells_run_code", {"shell_id": sid, "code": program}))
            assert (ran["stdout"], ran["exit_code"]) == ("hello from 42\n", 0), ran
            ok(await client.call_tool(
                "shells_files_write", {"shell_id": sid, "path": "state.txt", "content": "kept?"}
            ))  # fmt: skip
            wiped = await client.call_tool("shells_action", {"shell_id": sid, "action": "wipe_state"})
            assert ok(wiped)["destructive"]
            gone = await client.call_tool("shells_files_read", {"shell_id": sid, "path": "state.txt"})
            tool_error(gone, "file_not_found")
        finally:
            deleted = await client.call_tool("shells_delete", {"shell_id": sid})
        assert ok(deleted) == {"deleted": sid}


async def test_long_output_is_cut_in_the_middle_with_a_marker(server: ServerProcess, agent: Caller) -> None:
    sid = create_shell(agent)
    try:
        async with connect(server, agent.token, "http") as client:
            result = await client.call_tool(
                "shells_exec",
                {"shell_id": sid, "command": "seq 1 100000", "max_output_chars": 1000},
            )
        out = ok(result)
        assert out["stdout"].startswith("1\n2\n") and out["stdout"].endswith("99999\n100000\n")
        assert out["stdout_cut"] == len("".join(f"{i}\n" for i in range(1, 100001))) - 1000
        assert f"…[{out['stdout_cut']} characters of stdout cut here" in out["stdout"]
        assert out["stdout"] in text(result) and out["exit_code"] == 0
    finally:
        agent.http.delete(f"/v1/shells/{sid}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_arguments_and_refusals_are_tool_errors_with_the_rest_codes(
    server: ServerProcess, agent: Caller, transport: str
) -> None:
    async with connect(server, agent.token, transport) as client:
        err = tool_error(await client.call_tool("shells_exec", {"shell_id": "sh_x"}), "invalid_request")
        assert "command" in err["message"]
        tool_error(await client.call_tool("shells_create", {"language": "cobol"}), "invalid_request")
        tool_error(await client.call_tool("shells_create", {"shape": 7}), "invalid_request")
        tool_error(await client.call_tool("shells_nope", {}), "invalid_request")
        missing = new_id("sh")
        tool_error(
            await client.call_tool("shells_action", {"shell_id": missing, "action": "stop"}),
            "shell_not_found",
        )


# the one gate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_token_without_the_agent_entitlement_is_refused(
    server: ServerProcess, tenancy: Tenancy, agent: Caller, transport: str
) -> None:
    person = tenancy.caller(agent.tenant, "person", MEMBER)
    if transport == "http":
        r = person.http.post(ENDPOINT, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        err = error(r, 403, "permission_denied")
        assert err["details"] == {"scope": "shells.agent.invoke"}
        with pytest.raises(Exception):  # noqa: B017 - the MCP client's own error for a 403
            async with connect(server, person.token, "http") as client:
                await client.list_tools()
        return
    async with connect(server, person.token, "stdio") as client:
        refused = await client.call_tool("shells_list", {})
    assert "shells.agent.invoke" in tool_error(refused, "permission_denied")["message"]
    assert person.http.get("/v1/shells").status_code == 200  # the same token is fine through REST


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_another_tenants_shell_is_the_same_not_found_as_rest_gives(
    server: ServerProcess, tenancy: Tenancy, agent: Caller, transport: str
) -> None:
    other = tenancy.caller(tenancy.tenant("others"), "other", AGENT)
    theirs, missing = create_shell(other), new_id("sh")
    try:
        async with connect(server, agent.token, transport) as client:
            answers = [
                tool_error(await client.call_tool(tool, {"shell_id": sid, **args}), "shell_not_found")
                for sid in (theirs, missing)
                for tool, args in (("shells_exec", {"command": "id"}), ("shells_files_read", {"path": "x"}))
            ]
        rest = error(agent.http.get(f"/v1/shells/{theirs}"), 404, "shell_not_found")
        for err in answers:
            scrubbed = json.dumps(err).replace(theirs, "ID").replace(missing, "ID")
            assert scrubbed == json.dumps(rest).replace(theirs, "ID")
        assert other.http.get(f"/v1/shells/{theirs}").json()["state"] == "running"
    finally:
        other.http.delete(f"/v1/shells/{theirs}")


async def test_every_call_is_on_the_audit_trail_with_door_mcp(
    server: ServerProcess, tenancy: Tenancy
) -> None:
    admin = tenancy.caller(tenancy.tenant("audited"), "boss", [*AGENT, "tenant.admin"])
    async with connect(server, admin.token, "http") as client:
        sid = ok(await client.call_tool("shells_create", {"language": "bash"}))["shell"]["id"]
        ok(await client.call_tool("shells_list", {}))
        ok(await client.call_tool("shells_exec", {"shell_id": sid, "command": "true"}))
        tool_error(
            await client.call_tool("shells_files_read", {"shell_id": sid, "path": "nope"}), "file_not_found"
        )
        ok(await client.call_tool("shells_delete", {"shell_id": sid}))
    events = admin.http.get("/v1/audit", params={"door": "mcp"}).json()["events"]
    seen = {(e["action"], e["outcome"]) for e in events}
    assert {("create", "ok"), ("mcp.shells_list", "ok"), ("exec", "ok"), ("delete", "ok")} <= seen
    assert ("mcp.shells_files_read", "file_not_found") in seen
    assert all(e["door"] == "mcp" for e in events)
    assert {e["target"] for e in events if e["action"] == "mcp.shells_files_read"} == {sid}


# hardening of the HTTP transport -------------------------------------------------------------------


def _post(agent: Caller, body: Any = None, **headers: str) -> httpx.Response:
    message = body if body is not None else {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    return agent.http.post(ENDPOINT, json=message, headers=accept | headers)


def test_host_and_origin_must_name_this_server(agent: Caller) -> None:
    assert _post(agent).status_code == 200
    assert _post(agent, Origin="http://127.0.0.1:3000").status_code == 200
    assert _post(agent, Host="attacker.example").status_code == 421
    assert _post(agent, Origin="http://attacker.example").status_code == 403
    assert _post(agent, Host="localhost.attacker.example:80").status_code == 421


def test_bodies_over_the_cap_are_refused_unparsed(agent: Caller) -> None:
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"pad": "x" * (5 << 20)}}}
    assert _post(agent, big).status_code == 413


def test_the_token_rate_limit_applies(tenancy: Tenancy) -> None:
    slow = tenancy.caller(tenancy.tenant("slowagent", requests_per_s=0.2, burst=2), "slow", AGENT)
    assert [_post(slow).status_code for _ in range(2)] == [200, 200]
    error(_post(slow), 429, "rate_limited")


def test_the_door_is_mcp_whatever_the_request_says(tenancy: Tenancy, agent: Caller) -> None:
    person = tenancy.caller(agent.tenant, "claims-sdk", MEMBER)
    error(_post(person, **{"X-Shells-Door": "sdk"}), 403, "permission_denied")


# a client written by others ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def inspector() -> list[str]:
    """The MCP Inspector's CLI and the Node.js it runs on, installed once per run (and kept in the
    user's cache between runs)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shells" / "mcp-inspector"
    subprocess.run([REPO / "scripts" / "install-mcp-inspector.sh", cache], check=True, timeout=900)
    node = cache / "node_modules" / "node" / "bin" / "node"
    return [str(node), str(cache / "node_modules" / ".bin" / "mcp-inspector"), "--cli"]


def test_the_mcp_inspector_lists_the_tools_and_calls_shells_list(
    server: ServerProcess, agent: Caller, inspector: list[str]
) -> None:
    sid = create_shell(agent)
    try:
        common = [
            server.url + ENDPOINT,
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {agent.token}",
        ]

        def run(*args: str) -> dict[str, Any]:
            done = subprocess.run(
                [*inspector, *common, *args], capture_output=True, text=True, timeout=180, check=False
            )
            assert done.returncode == 0, done.stderr + done.stdout
            return dict(json.loads(done.stdout))

        tools = run("--method", "tools/list")["tools"]
        assert {t["name"] for t in tools} == TOOLS
        called = run("--method", "tools/call", "--tool-name", "shells_list")
        assert not called.get("isError")
        assert sid in {s["id"] for s in called["structuredContent"]["shells"]}
    finally:
        agent.http.delete(f"/v1/shells/{sid}")
