"""What the ingress proxy and the shells' DNS resolver add to a request, against going direct.

    python -m benchmarks.bench_ingress [--runs 500]

HTTP: the same small service (``tests/support/http_service.py``) runs twice, once in the host's
network namespace (reached directly) and once inside a loopback-only netns (reached only through
the proxy, with a port token). Each request is a new connection (the proxy serves one request per
connection), alternating direct and proxied in one process.

DNS: a zone server in its own process stands in for the upstream; the same client asks it directly
and through the resolver (an allowed name, so every query is also forwarded), alternating. A refused
name is timed too (answered without the upstream), and ``DnsResolver.answer`` alone, without sockets,
is the resolver's own cost per query.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

import dns.asyncquery
import dns.message
from tests.support.ready_process import ready_process
from tests.support.scratch_netns import scratch_netns

from shells.runtime.network.dns_upstream import IPAddress, Upstream
from shells.runtime.network.ingress import Exposure, IngressProxy, MemoryExposedPorts, new_port_token
from shells.runtime.network.resolver import DnsResolver, Peer

SERVICE_PORT = 18471
RESOLVER, UPSTREAM, CLIENT = "127.53.1.1", "127.53.1.2", "127.53.1.10"
DNS_PORT = 18453


async def _http_get(port: int, head: str) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    answer = await reader.read()
    writer.close()
    elapsed = time.perf_counter() - start
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:60]
    return elapsed


async def _alternate(runs: int, timed: dict[str, Callable[[], Awaitable[float]]]) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in timed}
    for call in timed.values():  # warm-up
        await call()
    for _ in range(runs):
        for name, call in timed.items():
            results[name].append(await call() * 1e6)
    return results


def _report(title: str, results: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(results[baseline])
    print(f"\n{title}")
    print(f"{'path':<34} {'median µs':>10} {'p90 µs':>9}  vs {baseline}")
    for name, values in results.items():
        med = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<34} {med:>10.0f} {p90:>9.0f}  {med / base:.2f}x (+{med - base:.0f} µs)")


async def bench_http(runs: int, shell: Path) -> None:
    token, token_hash = new_port_token()
    ports = MemoryExposedPorts()
    ports.expose("sh_bench", SERVICE_PORT, Exposure(str(shell), token_hash=token_hash))
    proxy = IngressProxy(ports)
    await proxy.start("127.0.0.1", 0)
    direct = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{SERVICE_PORT}\r\nConnection: close\r\n\r\n"
    proxied = (
        f"GET / HTTP/1.1\r\nHost: {SERVICE_PORT}-sh_bench.localhost:{proxy.port}\r\n"
        f"X-Shells-Port-Token: {token}\r\n\r\n"
    )
    try:
        results = await _alternate(
            runs,
            {
                "direct (host netns)": lambda: _http_get(SERVICE_PORT, direct),
                "through the proxy (shell netns)": lambda: _http_get(proxy.port, proxied),
            },
        )
    finally:
        await proxy.close()
    _report(f"HTTP GET, new connection each, runs: {runs}", results, "direct (host netns)")


class _AllowExampleOrg:
    def client_of(self, address: IPAddress) -> str | None:
        return "sh-bench" if str(address) == CLIENT else None

    def allowed_names(self, client: str) -> Sequence[str]:
        return ["*.example.org"]

    def peers(self, client: str) -> Iterable[Peer]:
        return []

    async def record_answer(
        self, client: str, patterns: Sequence[str], name: str, addresses: Sequence[IPAddress], ttl_s: int
    ) -> None:
        return None

    async def record_refusal(self, client: str, name: str, qtype: str) -> None:
        return None


async def _dns(where: str, port: int, name: str) -> float:
    query = dns.message.make_query(name, "A")
    start = time.perf_counter()
    await dns.asyncquery.udp(query, where, 2.0, port, source=CLIENT)
    return time.perf_counter() - start


async def bench_dns(runs: int, upstream_port: int) -> None:
    resolver = DnsResolver(_AllowExampleOrg(), [Upstream(UPSTREAM, upstream_port)], port=DNS_PORT)
    await resolver.listen(RESOLVER)
    try:
        results = await _alternate(
            runs,
            {
                "upstream directly": lambda: _dns(UPSTREAM, upstream_port, "api.example.org"),
                "through the resolver (allowed)": lambda: _dns(RESOLVER, DNS_PORT, "api.example.org"),
                "through the resolver (refused)": lambda: _dns(RESOLVER, DNS_PORT, "x.evil.test"),
            },
        )
        refused = dns.message.make_query("x.evil.test", "A").to_wire()
        source = ipaddress.ip_address(CLIENT)

        async def answer_only() -> float:
            start = time.perf_counter()
            await resolver.answer(refused, source, tcp=False)
            return time.perf_counter() - start

        results |= await _alternate(runs, {"answer() alone, refused, no sockets": answer_only})
    finally:
        await resolver.close()
    _report(f"DNS A query over UDP, runs: {runs}", results, "upstream directly")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    python = sys.executable
    with scratch_netns(loopback=True, prefix="shells-bench-ingress-") as shell:
        service = [python, "-m", "tests.support.http_service", str(SERVICE_PORT)]
        with ready_process(service), ready_process(["nsenter", f"--net={shell}", *service]):
            asyncio.run(bench_http(args.runs, shell))
    upstream_port = DNS_PORT + 1
    with ready_process([python, "-m", "tests.support.dns_zone_server", UPSTREAM, str(upstream_port)]):
        asyncio.run(bench_dns(args.runs, upstream_port))


if __name__ == "__main__":
    main()
