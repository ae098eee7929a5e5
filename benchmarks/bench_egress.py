"""What the egress proxy adds to a shell's HTTPS, against a direct connection, in one run.

    python -m benchmarks.bench_egress [--runs 40] [--mib 64] [--runtime container]

A real server (``tests/e2e/harness``) and the fake internet's HTTPS server (``tests/support/
fake_https``). Two shells of one class in mode ``internet``: one created with a secret for
``api.fake.test``, one without any. A client inside each (Python's ``ssl`` + ``http.client``, a new
connection per request, alternating paths run by run) measures:

- ``direct``: the shell without secrets to api.fake.test: not redirected (the baseline);
- ``relayed``: the shell with the secret to other.fake.test: through the proxy, TLS untouched
  (the proxy peeks at the SNI and copies bytes);
- ``brokered``: the shell with the secret to api.fake.test with its placeholder in a header: TLS
  ended at the proxy with a certificate of the instance's CA, the head rewritten, TLS again to
  the real host (certificate verified).

Latency is the median of a whole request (connect, handshake, GET, read ``ok``); throughput is one
``GET /bytes/N`` per path, alternating, the median of three.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.harness import running_server
from tests.support.fake_https import FakeHttps
from tests.support.fake_internet import FakeInternet

from shells.sdk import Shell

CLIENT = r"""
import http.client, json, os, socket, ssl, sys, time
host, address, cafile, runs, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ctx = ssl.create_default_context(cafile=cafile or None)
headers = {"Authorization": "Bearer " + os.environ.get("BENCH_TOKEN", "none")}

def get(path):
    start = time.perf_counter()
    conn = http.client.HTTPSConnection(host, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address, 443), timeout=60), server_hostname=host)
    conn.request("GET", path, headers=headers)
    body = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - start, len(body)

get("/")
latencies = [get("/")[0] * 1e3 for _ in range(runs)]
elapsed, got = get(f"/bytes/{size}") if size else (1.0, 0)
print(json.dumps({"ms": latencies, "mib_s": got / elapsed / 2**20}))
"""


def measure(shell: Shell, host: str, address: str, cafile: str, runs: int, size: int) -> dict[str, Any]:
    out = shell.commands.run(
        ["python3", "-c", CLIENT, host, address, cafile, str(runs), str(size)], timeout=600
    )
    assert out.exit_code == 0, f"{host} via {shell.id}: {out.stderr}"
    return dict(json.loads(str(out.stdout)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40, help="requests per path and round")
    parser.add_argument("--mib", type=int, default=64, help="size of the throughput download")
    parser.add_argument("--runtime", default="container")
    args = parser.parse_args()
    rounds = 3
    with (
        FakeInternet() as internet,
        FakeHttps(internet) as api,
        tempfile.TemporaryDirectory(prefix="shells-bench-egress-", dir="/var/tmp") as root,
    ):
        env = {"SHELLS_EGRESS_CA_FILE": str(api.ca_file)}
        with running_server(Path(root), warm_pool=0, env=env) as server, server.client() as client:
            client.secrets.create("BENCH_TOKEN", "real" + secrets.token_hex(16), ["api.fake.test"])
            brokered = client.create(
                "python", runtime=args.runtime, network="internet", secrets=["BENCH_TOKEN"]
            )
            plain = client.create("python", runtime=args.runtime, network="internet")
            try:
                ca = api.ca_file.read_text()
                for shell in (brokered, plain):
                    shell.commands.run("cat > /workspace/fake-ca.pem", stdin=ca)
                paths = {
                    "direct": (plain, "api.fake.test", "/workspace/fake-ca.pem"),
                    "relayed": (brokered, "other.fake.test", "/workspace/fake-ca.pem"),
                    "brokered": (brokered, "api.fake.test", ""),
                }
                ms: dict[str, list[float]] = {name: [] for name in paths}
                mib_s: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(rounds):
                    for name, (shell, host, cafile) in paths.items():
                        got = measure(shell, host, api.address, cafile, args.runs, args.mib * 2**20)
                        ms[name] += got["ms"]
                        mib_s[name].append(got["mib_s"])
                report(ms, mib_s, args)
            except AssertionError:
                print(server.log_tail())
                raise
            finally:
                brokered.kill()
                plain.kill()


def report(ms: dict[str, list[float]], mib_s: dict[str, list[float]], args: argparse.Namespace) -> None:
    base_ms, base_mib = statistics.median(ms["direct"]), statistics.median(mib_s["direct"])
    print(f"\n{args.runtime} shell, HTTPS request on a new connection ({len(ms['direct'])} per path)")
    print(f"{'path':<10} {'median ms':>10} {'p90 ms':>8}  vs direct     {'MiB/s':>8}  vs direct")
    for name, values in ms.items():
        med, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        mib = statistics.median(mib_s[name])
        print(
            f"{name:<10} {med:>10.2f} {p90:>8.2f}  {med / base_ms:.2f}x (+{med - base_ms:.2f})"
            f" {mib:>8.0f}  {mib / base_mib:.2f}x"
        )


if __name__ == "__main__":
    main()
