"""What the SDK adds over a raw httpx call to the same endpoint.

    python -m benchmarks.bench_sdk [--runs 300]

Against one real server and one running shell, round-robin in one process (so both sides see the
same server and machine state), each SDK call against the httpx call it makes, with the same
keep-alive connection settings and the JSON decoded on both sides:

- ``GET /v1/shells/{id}``: ``client.get(id)`` (request id, error check, a ``ShellInfo``, a handle)
  against ``httpx.Client.get(...).json()``;
- exec of ``true`` with ``?wait=true``: ``shell.commands.run(["true"])`` against the same POST;
- the same two through ``AsyncShells`` against ``httpx.AsyncClient``;
- ``GET`` once more with an in-process transport that answers at once: the SDK's own CPU cost,
  without the server's noise.

Prints medians, the difference of the medians and the median of the paired differences
(target: at most 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from tests.e2e.harness import ServerProcess

from shells import AsyncShells, Shells

TARGET_MS = 1.0
Pair = tuple[Callable[[], object], Callable[[], object]]  # (SDK call, raw httpx call)
AsyncPair = tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]


def ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


async def ams(fn: Callable[[], Awaitable[object]]) -> float:
    t = time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000


def report(name: str, sdk: list[float], raw: list[float]) -> str:
    med_sdk, med_raw = statistics.median(sdk), statistics.median(raw)
    paired = statistics.median(s - r for s, r in zip(sdk, raw, strict=True))
    verdict = "ok" if max(med_sdk - med_raw, paired) <= TARGET_MS else "OVER TARGET"
    return f"{name:<34} {med_raw:>8.3f} {med_sdk:>8.3f} {med_sdk - med_raw:>+9.3f} {paired:>+9.3f}  {verdict}"


def alternate(pairs: dict[str, Pair], runs: int) -> list[str]:
    """Time each pair ``runs`` times, the SDK first on even runs and the raw call first on odd ones."""
    sdk: dict[str, list[float]] = {name: [] for name in pairs}
    raw: dict[str, list[float]] = {name: [] for name in pairs}
    for i in range(runs):
        for name, (sdk_call, raw_call) in pairs.items():
            if i % 2:
                raw[name].append(ms(raw_call))
                sdk[name].append(ms(sdk_call))
            else:
                sdk[name].append(ms(sdk_call))
                raw[name].append(ms(raw_call))
    return [report(name, sdk[name], raw[name]) for name in pairs]


async def alternate_async(pairs: dict[str, AsyncPair], runs: int) -> list[str]:
    sdk: dict[str, list[float]] = {name: [] for name in pairs}
    raw: dict[str, list[float]] = {name: [] for name in pairs}
    for i in range(runs):
        for name, (sdk_call, raw_call) in pairs.items():
            if i % 2:
                raw[name].append(await ams(raw_call))
                sdk[name].append(await ams(sdk_call))
            else:
                sdk[name].append(await ams(sdk_call))
                raw[name].append(await ams(raw_call))
    return [report(name, sdk[name], raw[name]) for name in pairs]


def sync_rows(server: ServerProcess, sid: str, runs: int) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token}"}
    exec_path, exec_body = f"/v1/shells/{sid}/exec", {"cmd": ["true"]}
    with (
        Shells(server.url, server.token) as client,
        httpx.Client(base_url=server.url, headers=headers) as http,
    ):
        shell = client.get(sid)
        pairs: dict[str, Pair] = {
            "GET shell, sync": (
                lambda: client.get(sid),
                lambda: http.get(f"/v1/shells/{sid}").json(),
            ),
            "exec true (wait), sync": (
                lambda: shell.commands.run(["true"]),
                lambda: http.post(exec_path, params={"wait": "true"}, json=exec_body).json(),
            ),
        }
        return alternate(pairs, runs)


async def async_rows(server: ServerProcess, sid: str, runs: int) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token}"}
    exec_path, exec_body = f"/v1/shells/{sid}/exec", {"cmd": ["true"]}

    async def raw_get() -> object:
        return (await http.get(f"/v1/shells/{sid}")).json()

    async def raw_exec() -> object:
        return (await http.post(exec_path, params={"wait": "true"}, json=exec_body)).json()

    async with (
        AsyncShells(server.url, server.token) as client,
        httpx.AsyncClient(base_url=server.url, headers=headers) as http,
    ):
        shell = await client.get(sid)
        pairs: dict[str, AsyncPair] = {
            "GET shell, async": (lambda: client.get(sid), raw_get),
            "exec true (wait), async": (lambda: shell.commands.run(["true"]), raw_exec),
        }
        return await alternate_async(pairs, runs)


def in_process_rows(record: dict[str, object], runs: int) -> list[str]:
    """The SDK's own CPU cost: both clients talk to an in-process transport that answers at once."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=record))
    sid = str(record["id"])
    with (
        Shells("http://bench", "t", transport=transport) as client,
        httpx.Client(base_url="http://bench", transport=transport) as http,
    ):
        pairs: dict[str, Pair] = {
            "GET shell, in-process transport": (
                lambda: client.get(sid),
                lambda: http.get(f"/v1/shells/{sid}").json(),
            )
        }
        return alternate(pairs, runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shells-bench-sdk-", dir="/var/tmp"))
    # The token's rate limit would refuse the tight loops measured here; it is not what they measure.
    unlimited = {"SHELLS_RATE_LIMIT_PER_S": "1000000", "SHELLS_RATE_LIMIT_BURST": "1000000"}
    server = ServerProcess(root / "data", warm_pool=0, env=unlimited)
    server.start()
    try:
        with Shells(server.url, server.token) as client, client.create("bash") as shell:
            shell.commands.run(["true"])  # warm the agent connection path
            rows = sync_rows(server, shell.id, args.runs)
            rows += asyncio.run(async_rows(server, shell.id, args.runs))
            record = httpx.get(
                f"{server.url}/v1/shells/{shell.id}", headers={"Authorization": f"Bearer {server.token}"}
            ).json()
        rows += in_process_rows(record, 10 * args.runs)
    finally:
        server.purge()
        shutil.rmtree(root, ignore_errors=True)
    load = Path("/proc/loadavg").read_text(encoding="utf-8").split()[0]
    print(f"runs: {args.runs} per row, alternating SDK and raw; load average {load}")
    print(f"{'measurement':<34} {'raw ms':>8} {'sdk ms':>8} {'delta ms':>9} {'paired':>9}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
