"""A volume follows its shells to another machine through the object store (docs/storage.md):
instance A writes a volume through a shell and deletes the shell, the volume's files become durable
in a real S3 server (SeaweedFS, authentication enforced), A stops and its data dir (its pool, the
volume's only local copy) is purged; instance B, sharing only the record and the object store,
attaches the volume to a new shell and reads the files, writes more, and its upload is a new
version. Deleting the volume removes its blob. On B, a bucket mount names credentials stored once
with the CLI (``shells bucket-credentials``), and the host reads its file through the S3 API."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from shells.objects.store import BLOBS, S3Location, S3Objects
from tests.support.s3 import USER, S3Server

from .harness import ServerProcess, serving
from .rest import exec_wait, rest_client
from .test_bucket_mounts import cli
from .test_durable_snapshots import hand_over

DURABLE_TIMEOUT_S = 120.0


async def _bucket_call(url: str, what: str, *args: object) -> object:
    objects = S3Objects(S3Location.parse(url))
    try:
        return await getattr(objects, what)(*args)
    finally:
        await objects.aclose()


def _durable(api: httpx.Client, name: str, after: str | None, server: ServerProcess) -> dict[str, object]:
    """The volume once an upload newer than ``after`` is recorded."""
    deadline = time.monotonic() + DURABLE_TIMEOUT_S
    while True:
        vol = api.get(f"/v1/volumes/{name}").json()
        if vol["durable_at"] is not None and vol["durable_at"] != after:
            return dict(vol)
        assert time.monotonic() < deadline, f"not durable within {DURABLE_TIMEOUT_S} s:\n{server.log_tail()}"
        time.sleep(0.3)


def _shell(api: httpx.Client, body: dict[str, object]) -> str:
    r = api.post("/v1/shells", json={"language": "python", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_volume_written_on_one_instance_is_read_on_another(s3: S3Server, data_root: Path) -> None:
    url = s3.url("shells-volumes", prefix="instance")
    asyncio.run(_bucket_call(url, "create_bucket"))
    user_bucket = s3.url("user-runs", identity=USER)
    asyncio.run(_bucket_call(user_bucket, "create_bucket"))
    env = {"SHELLS_OBJECT_STORE": url}
    a = ServerProcess(data_root / "volumes-a", warm_pool=0, env=env)
    b = ServerProcess(data_root / "volumes-b", warm_pool=0, env=env | {"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"})
    with serving(a, "volumes-a"), rest_client(a) as api:
        created = api.post("/v1/volumes", json={"name": "results", "size_gib": 1})
        assert created.status_code == 201, created.text
        assert created.json()["durable_at"] is None  # nothing written yet
        sid = _shell(api, {"volumes": [{"name": "results", "path": "/data"}]})
        out = exec_wait(
            api, sid, "mkdir -p /data/d && echo made-on-a > /data/d/a.txt && chmod 640 /data/d/a.txt"
        )
        assert out["exit_code"] == 0, out
        assert api.delete(f"/v1/shells/{sid}").status_code == 204  # the writer lets it go
        first = _durable(api, "results", None, a)
        assert first["stored_bytes"]
        hand_over(a, b)
    assert not list(a.data_dir.rglob("*.img")), "a's pool (the volume's local copy) outlived its purge"
    assert len(asyncio.run(_bucket_call(url, "list", BLOBS))) == 1  # type: ignore[arg-type]

    with serving(b, "volumes-b"), rest_client(b) as api:
        sid = _shell(api, {"volumes": [{"name": "results", "path": "/data"}]})
        seen = exec_wait(api, sid, "cat /data/d/a.txt && stat -c %a /data/d/a.txt && echo more > /data/b.txt")
        assert seen["stdout"] == "made-on-a\n640\n", seen
        assert api.post(f"/v1/shells/{sid}/actions/stop").status_code == 200  # a stop lets it go too
        second = _durable(api, "results", str(first["durable_at"]), b)
        assert second["durable_at"] != first["durable_at"]
        blobs = asyncio.run(_bucket_call(url, "list", BLOBS))
        assert len(blobs) == 1, blobs  # type: ignore[arg-type]  # the former version's blob is gone
        assert api.delete(f"/v1/shells/{sid}").status_code == 204

        # A bucket mount names credentials stored once (CLI), instead of carrying keys.
        keys = {"AWS_ACCESS_KEY_ID": USER[0], "AWS_SECRET_ACCESS_KEY": USER[1]}
        stored = cli(b, "bucket-credentials", "create", "runs-key", env=keys)
        assert stored.returncode == 0 and USER[1] not in stored.stdout, stored.stderr
        listed = cli(b, "bucket-credentials", "ls")
        assert "runs-key" in listed.stdout and USER[0] in listed.stdout and USER[1] not in listed.stdout
        spec = f"bucket=user-runs,endpoint={s3.endpoint},path=/b,credentials=runs-key"
        made = cli(b, "create", "--language", "python", "--mount", spec)
        assert made.returncode == 0, made.stderr
        mounted = made.stdout.strip()
        try:
            wrote = exec_wait(api, mounted, "echo through-a-named-key > /b/named.txt && sync")
            assert wrote["exit_code"] == 0, wrote
        finally:
            assert cli(b, "rm", mounted).returncode == 0  # a delete waits for the mount's uploads
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(_bucket_call(user_bucket, "get", "named.txt", Path(d) / "got"))
            assert (Path(d) / "got").read_bytes() == b"through-a-named-key\n"
        assert cli(b, "bucket-credentials", "rm", "runs-key").returncode == 0

        assert api.delete("/v1/volumes/results").status_code == 204
        assert asyncio.run(_bucket_call(url, "list", BLOBS)) == []
