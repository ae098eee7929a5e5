"""The SDK's volumes and bucket mounts against a real server and a real SeaweedFS.

Written once for ``AsyncShells``; ``scripts/unasync.py`` turns this file into
``test_sdk_storage_sync.py``, which runs the same tests through ``Shells``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shells import AsyncShells
from shells.sdk import BucketDenied, BucketMount, VolumeAttach, VolumeInUse, VolumeNotFound
from tests.support import s3

from .harness import ServerProcess, running_server
from .test_bucket_mounts import BUCKET, _make_bucket, get, until

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def weed() -> Iterator[s3.S3Server]:
    if (why := s3.missing()) is not None:
        pytest.skip(why)
    with s3.s3_server() as server:
        asyncio.run(_make_bucket(server, BUCKET))
        yield server


@pytest.fixture(scope="module")
def storage_server(data_root: Path, weed: s3.S3Server) -> Iterator[ServerProcess]:
    env = {"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"}
    with running_server(data_root / "sdk-storage", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture
async def sdk(storage_server: ServerProcess) -> AsyncIterator[AsyncShells]:
    async with AsyncShells(storage_server.url, storage_server.token) as client:
        yield client


async def test_volumes_and_bucket_mounts_through_the_sdk(sdk: AsyncShells, weed: s3.S3Server) -> None:
    name = "sdk-" + secrets.token_hex(3)
    volume = await sdk.volumes.create(name, 1)
    assert (volume.name, volume.size_gib, volume.attached) == (name, 1, [])
    key, secret = s3.USER
    bucket = BucketMount(BUCKET, weed.endpoint, "/bucket", key, secret, prefix="sdk")
    assert secret not in repr(bucket)
    shell = await sdk.create("python", volumes=[VolumeAttach(name, "/vol")], mounts=[bucket])
    try:
        out = await shell.commands.run("echo v > /vol/v.txt && echo b > /bucket/b.txt && cat /vol/v.txt")
        assert out.stdout == "v\n" and out.exit_code == 0
        assert [h["shell_id"] for h in (await sdk.volumes.get(name)).attached] == [shell.id]
        with pytest.raises(VolumeInUse):
            await sdk.volumes.delete(name)
    finally:
        await shell.kill()
    with pytest.raises(BucketDenied):
        await sdk.create("python", mounts=[BucketMount(BUCKET, weed.endpoint, "/b", key, "wrong")])
    assert until("the write to reach the bucket", lambda: get(weed, "sdk/b.txt")) == b"b\n"
    await sdk.volumes.delete(name)
    with pytest.raises(VolumeNotFound):
        await sdk.volumes.get(name)
