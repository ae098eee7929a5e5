"""What an MCP tool call costs over the REST call it stands for.

    python -m benchmarks.bench_mcp [--runs 100]

Against one real server and one running shell, round-robin in one process (so every door sees the
same server and machine state), an exec of ``true`` run to its end:

- REST: ``POST /v1/shells/{id}/exec?wait=true`` with ``httpx.AsyncClient`` (the baseline);
- MCP over streamable HTTP: ``shells_exec`` through the official MCP client (``/api/agent/invoke``:
  Host/Origin check, authentication, the SDK's stateless transport, the control layer);
- MCP over stdio: ``shells_exec`` through the official client to ``shells mcp`` (one more process
  and a REST call behind each tool call).

Prints each door's median in ms and its ratio to REST's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from tests.e2e.harness import ServerProcess

Call = Callable[[], Awaitable[object]]


async def measure(calls: dict[str, Call], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for i in range(runs):
        for name in order[i % len(order) :] + order[: i % len(order)]:  # rotate who goes first
            start = time.perf_counter()
            await calls[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return times


async def bench(server: ServerProcess, runs: int) -> None:
    token = server.token
    headers = {"Authorization": f"Bearer {token}"}
    env = {"PATH": os.environ["PATH"], "SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": token}
    stdio = StdioServerParameters(command=sys.executable, args=["-m", "shells.cli.main", "mcp"], env=env)
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as rest,
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(server.url + "/api/agent/invoke", http_client=http)) as over_http,
        Client(stdio) as over_stdio,
    ):
        created = await rest.post("/v1/shells", json={"language": "bash"})
        shell_id = created.json()["id"]
        args = {"shell_id": shell_id, "argv": ["true"]}

        async def via_rest() -> object:
            r = await rest.post(
                f"/v1/shells/{shell_id}/exec", params={"wait": "true"}, json={"cmd": ["true"]}
            )
            assert r.json()["exit_code"] == 0
            return r

        async def via(client: Client) -> object:
            result = await client.call_tool("shells_exec", args)
            assert not result.is_error and result.structured_content["exit_code"] == 0  # type: ignore[index]
            return result

        calls: dict[str, Call] = {
            "REST exec ?wait=true": via_rest,
            "MCP shells_exec, HTTP": lambda: via(over_http),
            "MCP shells_exec, stdio": lambda: via(over_stdio),
        }
        try:
            await measure(calls, 5)  # warm-up: connections, imports, the shell's page cache
            times = await measure(calls, runs)
        finally:
            await rest.delete(f"/v1/shells/{shell_id}")
    base = statistics.median(times["REST exec ?wait=true"])
    print(f"{'door (exec of true, run to its end)':<36} {'median ms':>10} {'x REST':>8}   ({runs} runs each)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<36} {median:>10.2f} {median / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="shells-bench-mcp-", dir="/var/tmp"))
    server = ServerProcess(root / "data", warm_pool=1)
    try:
        server.start()
        asyncio.run(bench(server, runs))
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
