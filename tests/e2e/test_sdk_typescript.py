"""The TypeScript SDK (``@shells/sdk``) and the npx MCP server (``@shells/mcp``) in ``sdk-ts/``, as a user
gets them: installed from the committed lockfile, built with ``tsc``, packed with ``npm pack``.

Node's own test runner drives the SDK end to end against the session's real server (sdk-ts/test/src);
the MCP package is started with ``npx`` from its packed tarball and driven by the official MCP client,
which must list exactly the tools of the Python ``shells mcp``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import Client, StdioServerParameters

from shells.runtime.microvm.backend import MicrovmBackend

from .harness import ServerProcess
from .sdk_ts import CACHE, SDK_TS, Toolchain, build
from .tenancy import MEMBER, Caller, Tenancy

AGENT = [*MEMBER, "shells.agent.invoke"]
MICROVM_EXAMPLE = "sdk-typescript-2"
"""The product page's snippet, which creates a rust microvm."""


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    if shutil.which("npm") is None:
        pytest.skip("needs npm (scripts/install-system-deps.sh installs it)")
    return build()


def node_test(toolchain: Toolchain, server: ServerProcess, *files: str, **extra: str) -> str:
    """Run ``node --test`` over the compiled test files against ``server``; their report on failure."""
    paths = [f"dist-test/src/{f}.test.js" for f in files]
    env = {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token, **extra}
    done = toolchain.run("node", "--test", "--test-reporter=tap", "--test-concurrency=2", *paths, extra=env)
    return done.stdout


# the contract ----------------------------------------------------------------------------------------


def test_the_types_are_generated_from_the_servers_current_document(
    server: ServerProcess, toolchain: Toolchain
) -> None:
    live = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    copy = json.loads((SDK_TS / "openapi.json").read_text(encoding="utf-8"))
    assert live == copy, (
        "sdk-ts/openapi.json is not the server's document: run "
        "`.venv/bin/python scripts/openapi_json.py > sdk-ts/openapi.json && (cd sdk-ts && npm run generate)`"
    )
    toolchain.run("npm", "run", "check-generated")


# the SDK -----------------------------------------------------------------------------------------------


def test_the_sdk_end_to_end_and_every_doc_example(
    server: ServerProcess, toolchain: Toolchain, built_templates: dict[str, Any]
) -> None:
    """Streaming exec, several MiB of files, every container action, a terminal, typed errors, cancelled
    calls, retries and dropped connections, and the examples of docs/sdk-typescript.md and the README
    (the product page's snippet on a rust microvm, CreateOS's on devbox:1)."""
    missing = MicrovmBackend.available()
    why = f"{MICROVM_EXAMPLE}: no microvm class ({missing})"
    skip = {} if missing is None else {"SHELLS_TS_SKIP_EXAMPLES": why}
    report = node_test(toolchain, server, "sdk", "transport", "docs", **skip)
    assert "# fail 0" in report and "# cancelled 0" in report, report


def test_pause_resume_and_fork_on_a_microvm(server: ServerProcess, toolchain: Toolchain) -> None:
    missing = MicrovmBackend.available()
    if missing is not None:
        pytest.skip(f"no microvm class on this host: {missing}")
    report = node_test(toolchain, server, "microvm")
    assert "# pass 1" in report, report


# the MCP package ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenancy(server: ServerProcess) -> Iterator[Tenancy]:
    t = Tenancy(server)
    yield t
    t.close()


@pytest.fixture(scope="module")
def agent(tenancy: Tenancy) -> Caller:
    return tenancy.caller(tenancy.tenant("tsagents"), "agent", AGENT)


@asynccontextmanager
async def npx_mcp(toolchain: Toolchain, server: ServerProcess, token: str) -> AsyncIterator[Client]:
    """The official MCP client, connected to ``npx @shells/mcp`` installed from the packed tarballs."""
    sdk, mcp = toolchain.tarballs
    env = {
        "PATH": toolchain.path,
        "HOME": os.environ.get("HOME", "/root"),
        "npm_config_cache": str(CACHE / "npm"),
        "npm_config_prefer_offline": "true",
        "SHELLS_BASE_URL": server.url,
        "SHELLS_API_TOKEN": token,
    }
    args = ["-y", f"--package={sdk}", f"--package={mcp}", "shells-mcp"]
    params = StdioServerParameters(command="npx", args=args, env=env)
    async with Client(params, read_timeout_seconds=300) as client:
        yield client


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert isinstance(result.structured_content, dict)
    return dict(result.structured_content)


def _error(result: Any, code: str) -> dict[str, Any]:
    assert result.is_error, result.content
    err = dict(result.structured_content["error"])
    assert err["code"] == code, err
    assert result.content[0].text.startswith(f"{code}: ")
    return err


@pytest.mark.anyio
async def test_npx_serves_the_python_servers_tools_and_an_agent_uses_them(
    server: ServerProcess, toolchain: Toolchain, agent: Caller
) -> None:
    python = StdioServerParameters(
        command=sys.executable,
        args=["-m", "shells.cli.main", "mcp"],
        env={"PATH": os.environ["PATH"], "SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": agent.token},
    )
    async with Client(python, read_timeout_seconds=300) as reference:
        expected = (await reference.list_tools()).tools
    async with npx_mcp(toolchain, server, agent.token) as client:
        listed = (await client.list_tools()).tools
        assert [t.model_dump() for t in listed] == [t.model_dump() for t in expected]

        async def call(name: str, **args: Any) -> Any:
            return await client.call_tool(name, args)

        sid = _ok(await call("shells_create", language="python", network={"mode": "sealed"}))["shell"]["id"]
        try:
            ran = _ok(await call("shells_exec", shell_id=sid, command="seq 1 100000", max_output_chars=1000))
            assert ran["exit_code"] == 0 and ran["stdout"].startswith("1\n2\n")
            assert ran["stdout"].endswith("100000\n")
            assert ran["stdout_cut"] == len("".join(f"{i}\n" for i in range(1, 100001))) - 1000
            assert _ok(await call("shells_run_code", shell_id=sid, code="print(6*7)"))["stdout"] == "42\n"
            wrote = _ok(await call("shells_files_write", shell_id=sid, path="a.txt", content="héllo"))
            assert wrote["size"] == 6
            read = _ok(await call("shells_files_read", shell_id=sid, path="a.txt", max_bytes=2))
            assert (read["content"], read["truncated"]) == ("h\ufffd", True)
            listing = _ok(await call("shells_files_list", shell_id=sid))
            assert [e["name"] for e in listing["entries"]] == ["a.txt"]
            term = await call("shells_term", shell_id=sid, ttl_s=60)
            assert _ok(term)["token"].startswith("term_") and _ok(term)["token"] not in term.content[0].text
            wiped = await call("shells_action", shell_id=sid, action="wipe_state")
            assert _ok(wiped)["destructive"] and "DESTRUCTIVE" in wiped.content[0].text
            _error(await call("shells_exec", shell_id=sid), "invalid_request")
            _error(await call("shells_create", shape=7), "invalid_request")
            _error(await call("shells_nope"), "invalid_request")
            _error(await call("shells_files_read", shell_id="sh_missing", path="x"), "shell_not_found")
        finally:
            deleted = _ok(await call("shells_delete", shell_id=sid))
        assert deleted == {"deleted": sid}


@pytest.mark.anyio
async def test_npx_mcp_is_gated_by_the_agent_entitlement(
    server: ServerProcess, toolchain: Toolchain, tenancy: Tenancy, agent: Caller
) -> None:
    person = tenancy.caller(agent.tenant, "tsperson", MEMBER)
    async with npx_mcp(toolchain, server, person.token) as client:
        refused = await client.call_tool("shells_list", {})
    assert "shells.agent.invoke" in _error(refused, "permission_denied")["message"]
    assert person.http.get("/v1/shells").status_code == 200  # the same token is fine through REST
