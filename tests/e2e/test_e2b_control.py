"""The E2B door's control plane beyond create and kill (metrics, snapshot deletion, fork with a result
per child), driven by E2B's unchanged Python SDK in **domain mode**: the door's listener speaks TLS
with a certificate for ``*.e2b.localhost`` that a test CA of the test's own signs, and the SDK is
pointed at it only by ``E2B_DOMAIN`` (with the listener's port) and ``SSL_CERT_FILE``.

Names: ``api.e2b.localhost`` and ``{port}-{id}.e2b.localhost`` are loopback by RFC 6761 (a
``.localhost`` name), and the SDK's HTTP library resolves them so by itself, so the test needs no
resolver change, /etc/hosts entry or namespace, and no request can leave the machine."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.test_ca import issue

from .e2b_sdk import run_e2b
from .harness import SHELLS, free_port, running_server
from .test_e2b_door import FLAVOURS, SCOPES, Door, as_flavour

DOMAIN = "e2b.localhost"


class DomainDoor(Door):
    """The door in domain mode: E2B code sets only its domain (and trusts the test CA)."""

    def __init__(self, door: Door, port: int, ca: Path) -> None:
        super().__init__(door.server, port)
        self.url = f"https://127.0.0.1:{port}"
        self.port, self.ca = port, ca

    def env(self, key: str) -> dict[str, str]:
        return {"E2B_DOMAIN": f"{DOMAIN}:{self.port}", "E2B_API_KEY": key, "SSL_CERT_FILE": str(self.ca)}

    def run(self, script: str, flavour: str, key: str, **values: str) -> Any:
        header = "".join(f"{name} = {value!r}\n" for name, value in values.items())
        return run_e2b(header + as_flavour(script, flavour), self.env(key))

    def tenant_key(self, quotas: dict[str, int]) -> str:
        tenant = f"e2b-{secrets.token_hex(3)}"
        self.admin.post("/v1/tenants", json={"name": tenant, "quotas": quotas}).raise_for_status()
        body = {"scopes": SCOPES, "format": "e2b", "tenant": tenant, "principal": "e2b-user"}
        r = self.admin.post("/v1/tokens", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@pytest.fixture(scope="module")
def door(data_root: Path) -> Iterator[DomainDoor]:
    port = free_port()
    tls_dir = data_root / "e2b-tls"
    tls_dir.mkdir(parents=True)
    tls = issue(tls_dir, (f"*.{DOMAIN}", f"api.{DOMAIN}"))
    env = {
        "SHELLS_E2B_PORT": str(port),
        "SHELLS_E2B_DOMAIN": DOMAIN,
        "SHELLS_E2B_TLS_CERT_FILE": str(tls.cert),
        "SHELLS_E2B_TLS_KEY_FILE": str(tls.key),
        "SHELLS_METRICS_SAMPLE_S": "1",
    }
    with running_server(data_root / "e2b-domain", warm_pool=0, env=env) as srv:
        d = DomainDoor(Door(srv, port), port, tls.ca)
        built = d.admin.post(  # E2B's `base`: imported from the host cache, or built once (~90 s)
            "/v1/templates/build", params={"wait": "true"}, json={"builtin": "e2b-base:1"}, timeout=900
        )
        assert built.status_code in (200, 201) and built.json()["status"] == "ready", built.text
        yield d
        d.admin.close()


HOST_ROUTING = """
import json, time
import httpx, pyqwest
from e2b import Sandbox

sbx = Sandbox.create()
try:
    run = sbx.commands.run("echo over tls")
    sbx.files.write("t.txt", "domain mode")
    client = pyqwest.SyncClient(pyqwest.SyncHTTPTransport(tls_include_system_certs=True))
    envd = f"https://49983-{sbx.sandbox_id}.{DOMAIN}"
    # no E2B headers at all: the Host alone names the sandbox; a wrong header loses to it
    health = client.get(f"{envd}/health", headers={"X-Access-Token": sbx._envd_access_token})
    wrong = client.get(
        f"{envd}/health",
        headers={"X-Access-Token": sbx._envd_access_token, "E2b-Sandbox-Id": "abcdefghij0123456789"},
    )
    other = client.get(
        f"https://49983-abcdefghij0123456789.{DOMAIN}/health",
        headers={"X-Access-Token": sbx._envd_access_token},
    )
    api = client.get(f"https://api.{DOMAIN}/v2/sandboxes", headers={"X-API-KEY": KEY})
    # a user port: served by Shells' ingress once exposed (E2B's get_host names it)
    sbx.commands.run("mkdir -p /tmp/site && echo served > /tmp/site/index.html && pwd")
    sbx.commands.run("python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/site", background=True)
    hidden = client.get(f"https://{sbx.get_host(8000)}/index.html").status
    admin = {"Authorization": f"Bearer {ADMIN}"}
    ports = f"{SHELLS}/v1/shells/sh_{sbx.sandbox_id}/ports"
    httpx.post(ports, headers=admin, json={"port": 8000, "public": True}).raise_for_status()
    page = None
    for _ in range(50):
        page = client.get(f"https://{sbx.get_host(8000)}/index.html")
        if page.status == 200:
            break
        time.sleep(0.2)
    out = {
        "run": run.stdout, "read": sbx.files.read("t.txt"), "health": [health.status, wrong.status],
        "other": other.status, "api": [api.status, [s["sandboxID"] for s in api.json()]],
        "id": sbx.sandbox_id, "port": [hidden, page.status, page.content.decode()],
    }
finally:
    sbx.kill()
print(json.dumps(out))
"""


def test_domain_mode_serves_the_sdk_over_tls_and_routes_by_host(door: DomainDoor) -> None:
    key = door.key()
    values = f"DOMAIN = {f'{DOMAIN}:{door.port}'!r}\nKEY = {key!r}\nSHELLS = {door.server.url!r}\n"
    values += f"ADMIN = {door.server.token!r}\n"
    out = run_e2b(values + HOST_ROUTING, door.env(key))
    assert out["run"] == "over tls\n" and out["read"] == "domain mode"
    assert out["health"] == [204, 204]
    assert out["other"] == 401  # the Host names another sandbox: this sandbox's access token is not for it
    assert out["api"] == [200, [out["id"]]]
    assert out["port"] == [404, 200, "served\n"]  # not exposed, then exposed (public) through the ingress
    with pytest.raises(httpx.HTTPError):  # the door speaks TLS only now
        httpx.get(f"http://127.0.0.1:{door.port}/v2/sandboxes", timeout=10)
    untrusted = run_e2b(
        "import json\nfrom e2b import Sandbox\ntry:\n    Sandbox.list().next_items()\n    r = 'ok'\n"
        "except Exception as e:\n    r = type(e).__name__\nprint(json.dumps(r))\n",
        {**door.env(key), "SSL_CERT_FILE": "/dev/null"},
    )
    assert untrusted != "ok"  # the SDK really verifies the door's certificate


def test_serve_refuses_domain_mode_without_a_certificate(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SHELLS_E2B_PORT": str(free_port()), "SHELLS_E2B_DOMAIN": DOMAIN}
    done = subprocess.run(
        [*SHELLS, "serve", "--data-dir", str(tmp_path), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "SHELLS_E2B_TLS_CERT_FILE" in done.stderr, done.stderr[-2000:]


METRICS = """
import asyncio, json, datetime, time
from e2b import AsyncSandbox, SandboxNotFoundException

async def main():
    out = {}
    sbx = await AsyncSandbox.create(metadata={"shells.runtime": RUNTIME})
    try:
        await sbx.commands.run("head -c 50000000 /dev/urandom | sha256sum >/dev/null")
        metrics = []
        for _ in range(40):
            metrics = await sbx.get_metrics()
            if len(metrics) >= 3:
                break
            time.sleep(0.5)  # blocking in both flavours (the sync one has no awaits)
        out["count"] = len(metrics)
        out["fields"] = [
            [m.cpu_count, m.mem_total, m.disk_total, m.mem_used > 0, 0 <= m.cpu_used_pct <= 100,
             m.disk_used >= 0, m.timestamp.tzinfo is not None] for m in metrics[:1]
        ]  # fmt: skip
        out["ordered"] = [m.timestamp for m in metrics] == sorted(m.timestamp for m in metrics)
        by_id = await AsyncSandbox.get_metrics(sbx.sandbox_id)
        out["by_id"] = len(by_id) >= len(metrics)
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        out["future"] = len(await sbx.get_metrics(start=future))
        try:
            await AsyncSandbox.get_metrics(sbx.sandbox_id, api_key=OTHER_KEY)
        except SandboxNotFoundException:
            out["foreign"] = "SandboxNotFoundException"
    finally:
        await sbx.kill()
    try:
        await AsyncSandbox.get_metrics(sbx.sandbox_id)
    except SandboxNotFoundException:
        out["killed"] = "SandboxNotFoundException"
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_metrics_come_from_the_host_in_e2bs_shape(door: DomainDoor, flavour: str) -> None:
    other = door.tenant_key({"max_shells": 5})
    out = door.run(METRICS, flavour, door.key(), RUNTIME="container", OTHER_KEY=other)
    assert out["count"] >= 3
    # the default shape (1 vCPU, 512 MiB, 2 GiB of disk); memory used is the shell's cgroup's
    assert out["fields"][0][:3] == [1, 512 << 20, 2 << 30] and all(out["fields"][0][3:]), out["fields"]
    assert out["ordered"] and out["by_id"] and out["future"] == 0
    assert out["foreign"] == out["killed"] == "SandboxNotFoundException"


SNAPSHOTS = """
import asyncio, json
from e2b import AsyncSandbox

async def main():
    out = {}
    async def outcome(make):
        try:
            return await make()
        except Exception as e:
            return type(e).__name__ + ": " + str(e)[:200]
    sbx = await AsyncSandbox.create()
    try:
        await sbx.files.write("kept.txt", "snapped")
        snap = await sbx.create_snapshot()
        copy = await AsyncSandbox.create(template=snap.snapshot_id)
        out["in_use"] = await outcome(lambda: AsyncSandbox.delete_snapshot(snap.snapshot_id))
        out["copy_reads"] = await copy.files.read("kept.txt")
        await copy.kill()
        out["foreign"] = await AsyncSandbox.delete_snapshot(snap.snapshot_id, api_key=OTHER_KEY)
        out["deleted"] = await AsyncSandbox.delete_snapshot(snap.snapshot_id)
        out["again"] = await AsyncSandbox.delete_snapshot(snap.snapshot_id)
        out["unknown"] = await AsyncSandbox.delete_snapshot("snap_abcdefghij0123456789")
        listed = await AsyncSandbox.list_snapshots(sandbox_id=sbx.sandbox_id).next_items()
        out["listed"] = [s.snapshot_id for s in listed]
        out["create_from_deleted"] = await outcome(lambda: AsyncSandbox.create(template=snap.snapshot_id))
        out["id"] = snap.snapshot_id
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_snapshot_is_deleted_once_no_sandbox_uses_it(door: DomainDoor, flavour: str) -> None:
    other = door.tenant_key({"max_shells": 5})
    out = door.run(SNAPSHOTS, flavour, door.key(), OTHER_KEY=other)
    assert out["in_use"].startswith("SandboxException: 400: Cannot delete snapshot"), out["in_use"]
    assert out["copy_reads"] == "snapped"
    assert out["foreign"] is False  # another tenant's snapshot is unknown to it (404)
    assert out["deleted"] is True and out["again"] is False and out["unknown"] is False
    assert out["listed"] == []
    assert out["create_from_deleted"].startswith("SandboxException"), out["create_from_deleted"]
    native = door.admin.get("/v1/snapshots").json()
    assert out["id"] not in str(native)
    events = door.admin.get("/v1/audit", params={"door": "e2b", "action": "delete_snapshot"}).json()["events"]
    assert any(e["details"].get("snapshot") == out["id"] for e in events), events


FORK = """
import asyncio, json, time
from e2b import AsyncSandbox, RateLimitException

async def main():
    out = {}
    sbx = await AsyncSandbox.create(metadata={"shells.runtime": "microvm"})
    try:
        await sbx.files.write("f.txt", "before the fork")
        results = await sbx.fork(count=2, timeout=120)
        out["kinds"] = [type(r).__name__ for r in results]
        out["child"] = [await r.files.read("f.txt") for r in results if not isinstance(r, Exception)]
        out["refused"] = [str(r) for r in results if isinstance(r, RateLimitException)]
        for r in results:
            if not isinstance(r, Exception):
                out["child_timeout"] = (await r.get_info()).end_at > (await r.get_info()).started_at
                await r.kill()
        out["metrics"] = False
        for _ in range(40):  # the host samples every 5 s: a young sandbox may have none yet
            if await sbx.get_metrics():
                out["metrics"] = True
                break
            time.sleep(0.5)  # blocking in both flavours (the sync one has no awaits)
    finally:
        await sbx.kill()
    container = await AsyncSandbox.create()
    try:
        await container.fork()
        out["container"] = "no error"
    except Exception as e:
        out["container"] = type(e).__name__ + ": " + str(e)[:80]
    finally:
        await container.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_fork_reports_each_child_on_its_own(door: DomainDoor, flavour: str) -> None:
    runtimes = door.admin.get("/v1/info").json()["runtimes"]
    if "microvm" not in runtimes:
        pytest.skip("no microvm class on this host (QEMU missing)")
    # room for the parent, one child and the container: the second child is over the quota
    out = door.run(FORK, flavour, door.tenant_key({"max_shells": 2}))
    assert out["kinds"] == ["AsyncSandbox" if flavour == "async" else "Sandbox", "RateLimitException"]
    assert out["child"] == ["before the fork"]
    assert "max_shells" in out["refused"][0]
    assert out["child_timeout"] is True and out["metrics"] is True
    assert out["container"].startswith("SandboxException: 409"), out["container"]
