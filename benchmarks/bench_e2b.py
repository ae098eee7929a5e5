"""What the E2B door adds: E2B's own SDK (from PyPI, in its own virtualenv) against Shells' SDK, on
one server, in the same run.

    python -m benchmarks.bench_e2b [--runs 40] [--creates 8] [--domain]

- create → first output: ``Sandbox.create()`` then ``commands.run("echo hi")`` against
  ``client.create(template="e2b-base:1", network="internet")`` then ``commands.run(...)`` of the
  same argv (both make a container shell of E2B's ``base`` with internet);
- a command round trip: ``sbx.commands.run("true", user="root")`` (E2B runs it as
  ``/bin/bash -l -c true``) against ``shell.commands.run(["/bin/bash", "-l", "-c", "true"])``, so
  both run the same process as the same user.

- the same round trip over plain HTTP from this process (httpx): the door's ``Process.Start`` (a
  Connect stream) against REST's ``exec?wait=true``, which separates what the door's server side
  adds from what E2B's client library costs.

The E2B side runs in a worker process of the SDK's virtualenv, driven one operation at a time and
timing itself; the two sides alternate (round trips and creates alike), so both see the same server
and machine state. Prints medians and the difference (goal: the door adds under 2 ms to a round trip).

``--domain`` runs the door in domain mode: TLS with a certificate from a CA the benchmark makes, the
E2B side pointed at it by ``E2B_DOMAIN`` alone (``*.e2b.localhost``, loopback), so the rows show
what E2B code that sets only its domain pays (TLS included) against Shells' SDK over plain HTTP.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import ssl
import statistics
import struct
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.e2e.e2b_sdk import sdk_python
from tests.e2e.harness import ServerProcess, free_port
from tests.support.test_ca import issue

from shells import Shells

TARGET_MS = 2.0
BASE = "e2b-base:1"
ROUND_TRIP = ["/bin/bash", "-l", "-c", "true"]
DOMAIN = "e2b.localhost"
WORKER = textwrap.dedent(
    """
    import json, sys, time
    from e2b import Sandbox
    kept = Sandbox.create(timeout=3600)
    print("ready", flush=True)
    for line in sys.stdin:
        op = line.strip()
        t = time.perf_counter()
        if op == "create":
            sbx = Sandbox.create(timeout=600)
            sbx.commands.run("echo hi")
            took = (time.perf_counter() - t) * 1000
            sbx.kill()
        elif op == "round_trip":
            kept.commands.run("true", user="root")
            took = (time.perf_counter() - t) * 1000
        else:
            break
        print(json.dumps(took), flush=True)
    kept.kill()
    """
)


class E2bWorker:
    def __init__(self, env: dict[str, str]) -> None:
        env = {**env, "PATH": "/usr/bin:/bin"}
        self.proc = subprocess.Popen(
            [str(sdk_python()), "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def time(self, op: str) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(op + "\n")
        self.proc.stdin.flush()
        return float(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def connect_start_body(argv: list[str]) -> bytes:
    """One Connect envelope (flags, length, JSON) holding a ``StartRequest`` for ``argv``."""
    message = json.dumps({"process": {"cmd": argv[0], "args": argv[1:]}, "stdin": False}).encode()
    return struct.pack(">BI", 0, len(message)) + message


def raw_pairs(
    door_url: str, server: ServerProcess, key: str, runs: int, verify: ssl.SSLContext | bool = True
) -> tuple[list[float], list[float]]:
    """Round trips over plain HTTP: the door's Process.Start against REST's exec, alternating."""
    api = httpx.Client(base_url=door_url, headers={"X-API-KEY": key}, timeout=60, verify=verify)
    sandbox = api.post("/sandboxes", json={"templateID": "base", "timeout": 3600}).json()
    root = base64.b64encode(b"root:").decode()
    envd = httpx.Client(
        base_url=door_url,
        timeout=60,
        verify=verify,
        headers={
            "E2b-Sandbox-Id": sandbox["sandboxID"],
            "X-Access-Token": sandbox["envdAccessToken"],
            "Authorization": f"Basic {root}",
            "Content-Type": "application/connect+json",
        },
    )
    rest = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60)
    body = connect_start_body(ROUND_TRIP)
    exec_path = f"/v1/shells/sh_{sandbox['sandboxID']}/exec"

    def door() -> float:
        t = time.perf_counter()
        envd.post("/process.Process/Start", content=body).raise_for_status()
        return ms_since(t)

    def own() -> float:
        t = time.perf_counter()
        rest.post(exec_path, params={"wait": "true"}, json={"cmd": ROUND_TRIP}).raise_for_status()
        return ms_since(t)

    door(), own()
    door_ms, own_ms = alternating(runs, door, own)
    api.delete(f"/sandboxes/{sandbox['sandboxID']}")
    for client in (api, envd, rest):
        client.close()
    return door_ms, own_ms


def ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000


def shells_create(client: Shells) -> float:
    t = time.perf_counter()
    shell = client.create(template=BASE, network="internet")
    shell.commands.run(["/bin/bash", "-l", "-c", "echo hi"])
    took = ms_since(t)
    shell.kill()
    return took


def row(name: str, door: list[float], own: list[float]) -> str:
    med_door, med_own = statistics.median(door), statistics.median(own)
    diff, ratio = med_door - med_own, med_door / med_own
    return f"{name:<32} {med_own:>10.2f} {med_door:>10.2f} {diff:>+10.2f} {ratio:>7.2f}x"


def alternating(
    runs: int, door: Callable[[], float], own: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """``runs`` timings of each, the one going first alternating from run to run."""
    door_ms: list[float] = []
    own_ms: list[float] = []
    for i in range(runs):
        for fn in (door, own) if i % 2 == 0 else (own, door):
            (door_ms if fn is door else own_ms).append(fn())
    return door_ms, own_ms


def domain_mode(data_dir: Path, port: int) -> tuple[dict[str, str], Path]:
    """The server's settings for the door's domain mode, and the CA its certificate comes from."""
    tls = issue(data_dir, (f"*.{DOMAIN}", f"api.{DOMAIN}"), "bench_e2b CA")
    env = {
        "SHELLS_E2B_DOMAIN": DOMAIN,
        "SHELLS_E2B_TLS_CERT_FILE": str(tls.cert),
        "SHELLS_E2B_TLS_KEY_FILE": str(tls.key),
    }
    return env, tls.ca


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--creates", type=int, default=8)
    parser.add_argument("--domain", action="store_true", help="the door in domain mode (TLS, E2B_DOMAIN)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="shells-bench-e2b-", dir="/var/tmp"))
    port = free_port()
    env = {"SHELLS_E2B_PORT": str(port)}
    door_url = f"http://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = True
    if args.domain:
        domain_env, ca = domain_mode(data_dir, port)
        env |= domain_env
        door_url = f"https://127.0.0.1:{port}"
        verify = ssl.create_default_context(cafile=str(ca))
        verify.check_hostname = False  # the raw rows reach the listener by address
    server = ServerProcess(data_dir / "server", warm_pool=0, env=env)
    server.start()
    try:
        with Shells(server.url, server.token) as client:
            client.templates.build(builtin=BASE)  # imported from the host cache, or built once
            scopes = [
                "shells.read",
                "shells.create",
                "shells.act",
                "shells.destroy",
                "shells.exec",
                "shells.files",
            ]
            key = client.tokens.create(scopes, e2b=True).token
            if args.domain:
                sdk_env = {"E2B_DOMAIN": f"{DOMAIN}:{port}", "SSL_CERT_FILE": str(ca), "E2B_API_KEY": key}
            else:
                sdk_env = {"E2B_API_URL": door_url, "E2B_SANDBOX_URL": door_url, "E2B_API_KEY": key}
            worker = E2bWorker(sdk_env)
            shell = client.create(template=BASE, network="internet")
            try:
                for _ in range(3):  # warm both paths
                    worker.time("round_trip")
                    shell.commands.run(ROUND_TRIP)

                def own_round_trip() -> float:
                    t = time.perf_counter()
                    shell.commands.run(ROUND_TRIP)
                    return ms_since(t)

                door_rt, own_rt = alternating(args.runs, lambda: worker.time("round_trip"), own_round_trip)
                raw_door, raw_own = raw_pairs(door_url, server, key, args.runs, verify)
                door_create, own_create = alternating(
                    args.creates, lambda: worker.time("create"), lambda: shells_create(client)
                )
            finally:
                shell.kill()
                worker.close()
        mode = "domain mode, TLS" if args.domain else "header mode"
        print(
            f"{'median ms (' + mode + ')':<32} {'shells sdk':>10} {'e2b door':>10} {'diff':>10} {'ratio':>8}"
        )
        print(row("commands.run round trip", door_rt, own_rt))
        print(row("same, plain HTTP (server side)", raw_door, raw_own))
        print(row("create -> first output", door_create, own_create))
        added = statistics.median(door_rt) - statistics.median(own_rt)
        print(f"round trip: the door adds {added:+.2f} ms (goal < {TARGET_MS} ms)")
    finally:
        server.purge()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
