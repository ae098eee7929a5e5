"""Snapshots and saved templates in the object store, on the fake node against a real S3 server
(SeaweedFS): each becomes durable in the background, a second instance sharing only the record and
the object store starts shells from them, and deleting them removes their blobs. (The container
class end to end: tests/e2e/test_durable_snapshots.py.)"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from shells.domain.errors import InvalidState, SnapshotNotFound
from shells.objects.store import BLOBS, S3Location, S3Objects
from tests.support.s3 import S3Server

from ..support.inprocess import serving
from ..support.waiting import eventually

pytestmark = pytest.mark.anyio
_buckets = itertools.count()


@pytest.fixture
async def bucket_url(s3: S3Server) -> str:
    url = s3.url(f"durable{next(_buckets)}", prefix="instance")
    objects = S3Objects(S3Location.parse(url))
    await objects.create_bucket()
    await objects.aclose()
    return url


async def _blobs(url: str) -> list[str]:
    objects = S3Objects(S3Location.parse(url))
    try:
        return await objects.list(BLOBS)
    finally:
        await objects.aclose()


async def test_a_snapshot_taken_on_one_instance_starts_a_shell_on_another(
    tmp_path: Path, bucket_url: str
) -> None:
    record = f"sqlite:///{tmp_path / 'record.db'}"
    # Two instances of one record share its secrets key, as a cluster's replicas do.
    settings = {
        "database_url": record,
        "object_store": bucket_url,
        "secrets_key_file": tmp_path / "secrets.key",
    }
    async with serving(tmp_path / "a", None, **settings) as a, a.client() as admin:
        shell = await admin.create("python")
        await shell.files.write("/workspace/kept.txt", b"made on a")
        snap = await shell.snapshot()
        assert not snap.durable and snap.durable_at is None

        async def durable() -> bool:
            [listed] = await admin.snapshots.list(shell.id)
            return listed.durable

        await eventually(durable, what="the snapshot to be durable")
        [listed] = await admin.snapshots.list(shell.id)
        assert listed.durable_at is not None and listed.size_bytes
        await admin.templates.save(shell.id, "mine:1")

        async def template_durable() -> bool:
            return (await admin.templates.get("mine:1")).durable

        await eventually(template_durable, what="the saved template to be durable")
        token = a.token
    assert len(await _blobs(bucket_url)) == 2
    shutil.rmtree(tmp_path / "a")  # a's machine is gone: only the record and the object store remain

    async with serving(tmp_path / "b", None, **settings) as b, b.client(token) as admin:
        assert not (b.node.root / "snapshots" / snap.id).exists()
        copy = await admin.create("python", snapshot=snap.id)
        assert await copy.files.read("/workspace/kept.txt") == b"made on a"
        assert b.node.template_meta("mine:1") is None
        from_template = await admin.create("python", template="mine:1")
        assert from_template.info.template == "mine:1" and b.node.template_meta("mine:1") is not None
        await admin.snapshots.delete(snap.id)
        assert len(await _blobs(bucket_url)) == 1  # the template's
        await from_template.kill()
        await admin.templates.delete("mine:1")
        assert await _blobs(bucket_url) == []
        with pytest.raises(SnapshotNotFound):
            await admin.create("python", snapshot=snap.id)
        assert await copy.files.read("/workspace/kept.txt") == b"made on a"


async def test_an_upload_the_store_refuses_is_retried_until_it_is_durable(
    tmp_path: Path, s3: S3Server, bucket_url: str
) -> None:
    record, key = f"sqlite:///{tmp_path / 'record.db'}", tmp_path / "secrets.key"
    other_url = s3.url(f"durable{next(_buckets)}")
    other = S3Objects(S3Location.parse(other_url))
    await other.create_bucket()
    await other.aclose()
    async with (
        serving(tmp_path / "a", database_url=record, object_store=bucket_url, secrets_key_file=key) as a,
        a.client() as admin,
    ):
        objects = S3Objects(S3Location.parse(bucket_url))
        try:
            await objects._send("DELETE", None)  # the bucket goes away before the upload
            shell = await admin.create("python")
            await shell.files.write("/workspace/kept.txt", b"made on a")
            snap = await shell.snapshot()

            elsewhere_settings = {"database_url": record, "object_store": other_url, "secrets_key_file": key}
            async with (
                serving(tmp_path / "b", None, **elsewhere_settings) as b,
                b.client(a.token) as elsewhere,
            ):
                [listed] = await elsewhere.snapshots.list(shell.id)
                assert not listed.durable
                with pytest.raises(InvalidState, match="not yet in the object store"):
                    await elsewhere.create("python", snapshot=snap.id)

            await objects.create_bucket()  # back: the next try succeeds
        finally:
            await objects.aclose()

        async def durable() -> bool:
            [listed] = await admin.snapshots.list(shell.id)
            return listed.durable

        await eventually(durable, timeout_s=30, what="the retried upload")
    assert len(await _blobs(bucket_url)) == 1
