"""A user's bucket mounted in a container shell from the host (docs/storage.md), against a real
SeaweedFS with authentication enforced: files cross both ways, the credentials are nowhere inside,
read-only refuses writes, bad buckets and paths are typed 4xx at once, an endpoint that dies
mid-run gives EIO while the shell lives on, and stop/delete leave no FUSE process behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from shells.domain.limits import MOUNT_CACHE_BYTES
from shells.objects.store import S3Location, S3Objects
from shells.runtime.host import btrfs_quota
from shells.settings import Settings
from tests.support import s3

from .harness import ServerProcess, running_server
from .rest import error_of, exec_wait, rest_client

BUCKET = "alice-data"
T = TypeVar("T")


@pytest.fixture(scope="module")
def weed() -> Iterator[s3.S3Server]:
    if (why := s3.missing()) is not None:
        pytest.skip(why)
    with s3.s3_server() as server:
        asyncio.run(_make_bucket(server, BUCKET))
        yield server


async def _make_bucket(server: s3.S3Server, bucket: str) -> None:
    objects = S3Objects(S3Location.parse(server.url(bucket, s3.USER)))
    try:
        await objects.create_bucket()
    finally:
        await objects.aclose()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own in a thread: callable from sync and async tests alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _bucket(server: s3.S3Server, bucket: str = BUCKET) -> S3Objects:
    return S3Objects(S3Location.parse(server.url(bucket, s3.USER)))


def put(server: s3.S3Server, key: str, data: bytes) -> None:
    async def go() -> None:
        objects = _bucket(server)
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            try:
                await objects.put(key, Path(f.name))
            finally:
                await objects.aclose()

    _run(go())


def get(server: s3.S3Server, key: str) -> bytes | None:
    async def go() -> bytes | None:
        objects = _bucket(server)
        try:
            if await objects.head(key) is None:
                return None
            with tempfile.TemporaryDirectory() as d:
                await objects.get(key, Path(d) / "x")
                return (Path(d) / "x").read_bytes()
        finally:
            await objects.aclose()

    return _run(go())


@pytest.fixture(scope="module")
def server(data_root: Path, weed: s3.S3Server) -> Iterator[ServerProcess]:
    with running_server(data_root / "mounts", warm_pool=0, env={"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"}) as srv:
        yield srv


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(server) as client:
        yield client


def mount(weed: s3.S3Server, path: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bucket": BUCKET,
        "endpoint": weed.endpoint,
        "path": path,
        "credentials": {"access_key_id": s3.USER[0], "secret_access_key": s3.USER[1]},
    }
    return body | extra


def fuse_processes(server: ServerProcess, shell_id: str) -> list[str]:
    """The pids of rclone processes serving the shell's mounts (found on the host)."""
    where = str(Settings(data_dir=server.data_dir).run_dir / "shells" / shell_id)
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "rclone" in cmdline and where in cmdline:
                found.append(proc.name)
    return found


def assert_no_credentials(api: httpx.Client, shell_id: str, more: str, where: str) -> None:
    """Root inside looks for the bucket's key and secret in its environment, every process's
    ``cmdline`` and ``environ``, ``mountinfo``, what ``more`` prints, and the files ``where`` (grep
    arguments) names; finds neither. The pattern is written so that the command line holding it does
    not match it (``x[y]`` matches ``xy``)."""
    secret, key_id = s3.USER[1], s3.USER[0]
    pattern = f"{secret[:-1]}[{secret[-1]}]"
    hunt = exec_wait(
        api,
        shell_id,
        f"env; cat /proc/self/mountinfo; {more or 'true'}; "
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; tr '\\0' '\\n' < $p/environ; done 2>/dev/null; "
        f"grep -rsIl -e '{pattern}' {where} 2>/dev/null; echo END",
        timeout_s=120,
    )
    seen = hunt["stdout"] + hunt["stderr"]
    assert seen.endswith("END\n"), seen[-500:]
    assert secret not in seen and key_id not in seen


def until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_bucket_files_cross_both_ways_and_the_credentials_stay_out(
    api: httpx.Client, server: ServerProcess, weed: s3.S3Server
) -> None:
    put(weed, "run1/hello.txt", b"from the bucket\n")
    r = api.post(
        "/v1/shells",
        json={
            "language": "python",
            "mounts": [
                mount(weed, "/data", prefix="run1"),
                mount(weed, "/workspace/ro", prefix="run1", read_only=True),
            ],
        },
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    try:
        assert exec_wait(api, sid, "cat /data/hello.txt")["stdout"] == "from the bucket\n"
        out = exec_wait(api, sid, "echo from the shell > /data/out.txt && sync")
        assert out["exit_code"] == 0, out
        uploaded = until("the shell's file in the bucket", lambda: get(weed, "run1/out.txt"))
        assert uploaded == b"from the shell\n"
        put(weed, "run1/late.txt", b"later\n")
        until(
            "an object put after the mount to appear",
            lambda: exec_wait(api, sid, "cat /data/late.txt")["stdout"] == "later\n",
        )

        ro = exec_wait(api, sid, "cat /workspace/ro/hello.txt && echo x > /workspace/ro/new.txt")
        assert ro["stdout"] == "from the bucket\n"
        assert ro["exit_code"] != 0 and "Read-only" in ro["stderr"], ro
        assert get(weed, "run1/new.txt") is None

        # The attack: root inside looks everywhere a credential could be.
        assert_no_credentials(
            api,
            sid,
            "",
            "/ --exclude-dir=proc --exclude-dir=sys --exclude-dir=data --exclude-dir=ro --exclude-dir=usr",
        )
        procs = exec_wait(api, sid, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
        assert "rclone" not in procs["stdout"]  # the host's FUSE processes are not visible inside
        for where in (f"/v1/shells/{sid}", f"/v1/shells/{sid}/events", "/v1/audit"):
            answer = api.get(where)
            assert answer.status_code == 200 and s3.USER[1] not in answer.text
        shown = api.get(f"/v1/shells/{sid}").json()
        assert [(m["path"], m["read_only"]) for m in shown["mounts"]] == [
            ("/data", False),
            ("/workspace/ro", True),
        ]
        mounts = [e for e in api.get(f"/v1/shells/{sid}/events").json()["events"] if e["kind"] == "mount"]
        assert [e["details"]["path"] for e in mounts] == ["/data", "/workspace/ro"]

        assert len(fuse_processes(server, sid)) == 2
        pool = server.data_dir / "storage" / "pool"
        for i in (0, 1):  # what rclone keeps on the host's disk is capped by a quota of its own
            cache = pool / "mountcache" / f"{sid}-{i}"
            limit = btrfs_quota._qgroups_dir(pool) / f"0_{btrfs_quota.subvolume_id(cache)}" / "max_referenced"
            assert int(limit.read_text()) == MOUNT_CACHE_BYTES
        big = exec_wait(api, sid, "head -c 16M /dev/urandom > /data/last.bin && sha256sum /data/last.bin")
        assert big["exit_code"] == 0, big
        assert api.post(f"/v1/shells/{sid}/actions/stop").status_code == 200
        assert fuse_processes(server, sid) == []
        sent = get(weed, "run1/last.bin")  # a stop sends every write before it unmounts
        assert sent is not None and hashlib.sha256(sent).hexdigest() == big["stdout"].split()[0]
        assert api.post(f"/v1/shells/{sid}/actions/start").status_code == 200
        assert exec_wait(api, sid, "cat /data/out.txt")["stdout"] == "from the shell\n"
    finally:
        assert api.delete(f"/v1/shells/{sid}").status_code == 204
    until("the FUSE processes to end after delete", lambda: fuse_processes(server, sid) == [])
    assert get(weed, "run1/out.txt") == b"from the shell\n"  # deleting a shell keeps the bucket's data


def test_bad_buckets_and_paths_are_typed_4xx_at_once(api: httpx.Client, weed: s3.S3Server) -> None:
    before = len(api.get("/v1/shells").json()["shells"])
    wrong = mount(weed, "/data") | {"credentials": {"access_key_id": s3.USER[0], "secret_access_key": "nope"}}
    dead = mount(weed, "/data") | {"endpoint": "http://127.0.0.1:9"}
    cases = [
        (wrong, 400, "bucket_denied"),
        (mount(weed, "/data") | {"bucket": "no-such-bucket"}, 404, "bucket_not_found"),
        (dead, 400, "bucket_unreachable"),
        (mount(weed, "/data") | {"endpoint": "http://169.254.169.254"}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        started = time.monotonic()
        r = api.post("/v1/shells", json={"language": "python", "mounts": [body]})
        error_of(r, status, code)
        assert time.monotonic() - started < 10, f"{code} took too long"
        assert "nope" not in r.text
    for paths in (["/"], ["/proc/x"], ["/dev"], ["/.shells"], ["/workspace"], ["/data", "/data/x"], ["data"]):
        r = api.post("/v1/shells", json={"language": "python", "mounts": [mount(weed, p) for p in paths]})
        error_of(r, 400, "invalid_request")
    error_of(
        api.post("/v1/shells", json={"language": "python", "runtime": "wasm", "mounts": [mount(weed, "/d")]}),
        409,
        "feature_unavailable",
    )
    assert len(api.get("/v1/shells").json()["shells"]) == before  # nothing half-created


def test_an_endpoint_that_dies_mid_run_gives_eio_and_the_shell_lives_on(api: httpx.Client) -> None:
    with s3.s3_server() as own:
        asyncio.run(_make_bucket(own, BUCKET))
        put(own, "a.txt", b"a\n")
        put(own, "b.txt", b"b\n")
        r = api.post("/v1/shells", json={"language": "python", "mounts": [mount(own, "/data")]})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        try:
            assert exec_wait(api, sid, "cat /data/a.txt")["stdout"] == "a\n"
            own.stop()  # the endpoint goes away mid-run
            started = time.monotonic()
            gone = exec_wait(api, sid, "cat /data/b.txt", timeout_s=120)
            assert gone["exit_code"] != 0 and "Input/output error" in gone["stderr"], gone
            assert time.monotonic() - started < 60
            assert exec_wait(api, sid, "echo alive")["stdout"] == "alive\n"
        finally:
            assert api.delete(f"/v1/shells/{sid}").status_code == 204


def cli(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token}
    return subprocess.run(
        [sys.executable, "-m", "shells.cli.main", *args],
        env=base | (env or {}),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_volumes_and_mounts_from_the_command_line(server: ServerProcess, weed: s3.S3Server) -> None:
    assert cli(server, "volume", "create", "clivol", "--size-gib", "1").returncode == 0
    creds = {"AWS_ACCESS_KEY_ID": s3.USER[0], "AWS_SECRET_ACCESS_KEY": s3.USER[1]}
    spec = f"bucket={BUCKET},endpoint={weed.endpoint},path=/b,prefix=cli,ro"
    no_creds = cli(server, "create", "--language", "python", "--mount", spec)
    assert no_creds.returncode != 0 and "AWS_ACCESS_KEY_ID" in no_creds.stderr
    put(weed, "cli/in.txt", b"in\n")
    made = cli(server, "create", "--language", "python", "--mount", spec, "--volume", "clivol:/v", env=creds)
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()
    try:
        out = cli(server, "exec", sid, "--", "sh", "-c", "cat /b/in.txt > /v/copy.txt && cat /v/copy.txt")
        assert out.stdout == "in\n", out.stderr
        listed = cli(server, "volume", "ls")
        assert listed.returncode == 0 and "clivol" in listed.stdout
        busy = cli(server, "volume", "rm", "clivol")
        assert busy.returncode != 0 and "volume_in_use" in busy.stderr + busy.stdout
    finally:
        assert cli(server, "rm", sid).returncode == 0
    gone = cli(server, "volume", "rm", "clivol")
    assert gone.returncode == 0, gone.stderr


def test_a_killed_server_leaves_mounts_serving_and_reconciliation_drops_the_dead_ones(
    data_root: Path, weed: s3.S3Server
) -> None:
    env = {"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"}
    with running_server(data_root / "mounts-crash", warm_pool=0, env=env) as srv, rest_client(srv) as api:
        put(weed, "crash/x.txt", b"x\n")
        body = {"language": "python", "mounts": [mount(weed, "/data", prefix="crash")]}
        kept, dead = (api.post("/v1/shells", json=body).json()["id"] for _ in range(2))
        srv.kill9()
        instance = Settings(data_dir=srv.data_dir).instance_id
        procs = Path(f"/sys/fs/cgroup/freezer/shells-{instance}/{dead}/cgroup.procs")
        for pid in procs.read_text().split():  # the shell dies while no server watches
            os.kill(int(pid), 9)
        assert len(fuse_processes(srv, dead)) == 1
        srv.start()
        assert exec_wait(api, kept, "cat /data/x.txt")["stdout"] == "x\n"
        assert len(fuse_processes(srv, kept)) == 1
        assert api.get(f"/v1/shells/{dead}").json()["state"] == "stopped"
        assert fuse_processes(srv, dead) == []
        mounted = Path("/proc/self/mountinfo").read_text()
        assert f"/shells/{dead}/mounts/" not in mounted and f"/shells/{kept}/mounts/" in mounted
        assert api.post(f"/v1/shells/{dead}/actions/start").status_code == 200
        assert exec_wait(api, dead, "cat /data/x.txt")["stdout"] == "x\n"
