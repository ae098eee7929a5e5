"""Workspace sync on the fake node against a real S3 server (SeaweedFS, authentication enforced),
as the user's own bucket with the user's own key: files land in the bucket with no copy step,
completely at stop and delete; bad credentials, a missing bucket or a dead endpoint are a 400 at
create within seconds, and so is an endpoint on this host the operator did not list; the endpoint
going away mid-run is reported and loses nothing when it returns.
(The container class end to end: tests/e2e/test_workspace_sync.py.)"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import BucketDenied, BucketNotFound, BucketUnreachable
from shells.objects.store import S3Location, S3Objects
from shells.sdk import AsyncShells
from tests.support.s3 import USER, S3Server

from ..support.inprocess import Instance, serving
from ..support.waiting import eventually

pytestmark = pytest.mark.anyio
_buckets = itertools.count()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DEAD = f"127.0.0.1:{_free_port()}"
"""An endpoint nothing listens on (allowed, like the S3 server, as an operator's private one)."""


@pytest.fixture
async def instance(tmp_path: Path, s3: S3Server) -> AsyncIterator[Instance]:
    private = (s3.endpoint.split("://")[1], DEAD)
    async with serving(  # passes and retries without the production waits
        tmp_path, sync_private_endpoints=private, sync_interval_s=0.1, sync_first_retry_s=0.05
    ) as running:
        yield running


@pytest.fixture
async def bucket(s3: S3Server) -> AsyncIterator[S3Objects]:
    """A bucket of the user (not the instance), seen through the S3 API with the user's key."""
    objects = S3Objects(S3Location.parse(s3.url(f"user{next(_buckets)}", identity=USER, prefix="runs/1")))
    await objects.create_bucket()
    yield objects
    await objects.aclose()


def sync_body(s3: S3Server, objects: S3Objects, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "bucket": objects.where.bucket,
        "endpoint": s3.endpoint,
        "prefix": "runs/1",
        "credentials": {"access_key_id": USER[0], "secret_access_key": USER[1]},
    }
    return body | changes


async def read(bucket: S3Objects, key: str, tmp_path: Path) -> bytes | None:
    if await bucket.head(key) is None:
        return None
    await bucket.get(key, tmp_path / "got")
    return (tmp_path / "got").read_bytes()


async def test_workspace_files_land_in_the_users_bucket_and_are_complete_at_stop_and_delete(
    admin: AsyncShells, s3: S3Server, bucket: S3Objects, tmp_path: Path
) -> None:
    shell = await admin.create("python", sync=sync_body(s3, bucket))
    await shell.files.mkdir("/workspace/out")
    await shell.files.write("/workspace/out/result.txt", b"first")
    await shell.files.write("/workspace/gone.txt", b"short-lived")

    async def landed() -> bool:
        return (
            await read(bucket, "out/result.txt", tmp_path) == b"first"
            and await bucket.head("gone.txt") is not None
        )

    await eventually(landed, what="the files in the bucket")
    status = await shell.sync_status()
    assert status.enabled and status.bucket == bucket.where.bucket and status.prefix == "runs/1"
    assert status.access_key_id == USER[0] and "secret" not in repr(status).lower().replace("secret_", "")

    await shell.files.write("/workspace/out/result.txt", b"second")
    await shell.files.remove("/workspace/gone.txt")
    await shell.stop()  # complete at stop: no wait for the next pass
    assert await read(bucket, "out/result.txt", tmp_path) == b"second"
    assert await bucket.head("gone.txt") is None
    status = await shell.sync_status()
    assert (status.state, status.synced_files, status.pending_files) == ("synced", 1, 0)

    await shell.start()
    await shell.files.write("/workspace/last.txt", b"written just before delete")
    assert await shell.kill()
    assert await read(bucket, "last.txt", tmp_path) == b"written just before delete"


async def test_bad_credentials_a_missing_bucket_or_a_dead_endpoint_are_a_400_at_create(
    admin: AsyncShells, s3: S3Server, bucket: S3Objects
) -> None:
    cases = {
        "denied": sync_body(s3, bucket, credentials={"access_key_id": USER[0], "secret_access_key": "wrong"}),
        "no_such_bucket": sync_body(s3, bucket, bucket="nobody-made-this"),
        "unreachable": sync_body(s3, bucket, endpoint=f"http://{DEAD}"),
        "forbidden": sync_body(s3, bucket, endpoint=f"http://127.0.0.1:{_free_port()}"),  # not listed
    }
    errors = {
        "denied": BucketDenied,
        "no_such_bucket": BucketNotFound,
        "unreachable": BucketUnreachable,
        "forbidden": BucketUnreachable,
    }  # the one vocabulary mounts use too (control/bucket_access.py)
    for reason, body in cases.items():
        started = time.monotonic()
        with pytest.raises(errors[reason]) as caught:
            await admin.create("python", sync=body)
        assert caught.value.details["reason"] == reason
        assert time.monotonic() - started < 10
        assert USER[1] not in str(caught.value)
    for endpoint in ("http://169.254.169.254", "http://localhost:9000", "http://[::1]:9000"):
        with pytest.raises(BucketUnreachable) as caught:
            await admin.create("python", sync=sync_body(s3, bucket, endpoint=endpoint))
        assert caught.value.details["reason"] == "forbidden", endpoint
    assert await admin.list() == []  # nothing half-created


async def test_the_bucket_going_away_mid_run_is_reported_and_nothing_is_lost(
    instance: Instance, admin: AsyncShells, s3: S3Server, bucket: S3Objects, tmp_path: Path
) -> None:
    shell = await admin.create("python", sync=sync_body(s3, bucket))
    await shell.files.write("/workspace/a.txt", b"before")
    await eventually(lambda: read(bucket, "a.txt", tmp_path), what="the first file in the bucket")
    with s3.outage():  # the endpoint goes away: connections refused
        await shell.files.write("/workspace/b.txt", b"while it was away")

        async def failing() -> bool:
            return (await shell.sync_status()).state == "failing"

        await eventually(failing, what="the failure to be reported")
        status = await shell.sync_status()
        assert status.last_error and status.last_error_at and status.pending_files >= 1
        assert (await shell.commands.run("true")).exit_code == 0  # the shell runs on
        events = await shell.events()
        assert any(e.action == "sync" and e.outcome == "bucket_unreachable" for e in events)
        assert status.last_error_code == "bucket_unreachable"

    await eventually(lambda: read(bucket, "b.txt", tmp_path), timeout_s=30, what="the retried pass")
    assert await read(bucket, "b.txt", tmp_path) == b"while it was away"
    assert await read(bucket, "a.txt", tmp_path) == b"before"
    assert (await shell.sync_status()).last_error is None
