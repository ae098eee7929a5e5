"""The object store against a real S3 server (SeaweedFS, authentication enforced) and as a local
directory: what goes in comes out bit for bit, content is stored once, a corrupt download never
lands, and every failure of the endpoint is a named error within seconds."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shells.objects.store import (
    PART_SIZE,
    Corrupt,
    Denied,
    LocalObjects,
    Missing,
    NoSuchBucket,
    ObjectStore,
    S3Location,
    S3Objects,
    Unreachable,
    blob_key,
    file_sha256,
    get_blob,
    put_blob,
)
from tests.support.s3 import S3Server

_buckets = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjects(tmp_path / "objects")
        return
    server: S3Server = request.getfixturevalue("s3")
    objects = S3Objects(S3Location.parse(server.url(f"bucket-{os.getpid()}-{next(_buckets)}")))
    await objects.create_bucket()
    yield objects
    await objects.aclose()


def _file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.write(os.urandom(size))
    return path


@pytest.mark.anyio
async def test_what_goes_in_comes_out_and_can_be_listed_and_deleted(
    store: ObjectStore, tmp_path: Path
) -> None:
    src = _file(tmp_path / "in", 300_000)
    info = await store.put("snapshots/sh1/rootfs", src)
    assert info.size == 300_000
    assert (await store.head("snapshots/sh1/rootfs")) is not None
    assert await store.head("snapshots/sh1/none") is None
    await store.get("snapshots/sh1/rootfs", tmp_path / "out", file_sha256(src))
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert await store.list("snapshots/") == ["snapshots/sh1/rootfs"]
    await store.delete("snapshots/sh1/rootfs")
    assert await store.list("snapshots/") == []
    with pytest.raises(Missing):
        await store.get("snapshots/sh1/rootfs", tmp_path / "gone")
    assert not (tmp_path / "gone").exists()


@pytest.mark.anyio
async def test_a_large_file_goes_up_in_parts_and_comes_back_whole(store: ObjectStore, tmp_path: Path) -> None:
    src = _file(tmp_path / "big", 2 * PART_SIZE + 12345)
    digest = await put_blob(store, src)
    assert digest == file_sha256(src)
    await get_blob(store, digest, tmp_path / "back")
    assert file_sha256(tmp_path / "back") == digest


@pytest.mark.anyio
async def test_the_same_content_is_stored_once(store: ObjectStore, tmp_path: Path) -> None:
    a = _file(tmp_path / "a", 1000)
    b = tmp_path / "b"
    b.write_bytes(a.read_bytes())
    assert await put_blob(store, a) == await put_blob(store, b)
    assert await store.list("blobs/") == [blob_key(file_sha256(a))]


@pytest.mark.anyio
async def test_a_download_that_does_not_match_its_digest_never_lands(
    store: ObjectStore, tmp_path: Path
) -> None:
    src = _file(tmp_path / "in", 5000)
    await store.put("x/y", src)
    dest = tmp_path / "dest"
    dest.write_bytes(b"previous")
    with pytest.raises(Corrupt):
        await store.get("x/y", dest, "0" * 64)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


@pytest.mark.anyio
async def test_keys_cannot_climb_out(store: ObjectStore, tmp_path: Path) -> None:
    src = _file(tmp_path / "in", 10)
    for key in ("../escape", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            await store.put(key, src)


@pytest.mark.anyio
async def test_endpoint_failures_are_named_errors_within_seconds(s3: S3Server, tmp_path: Path) -> None:
    wrong = S3Objects(S3Location.parse(s3.url("anything", ("shellsinstance", "not-the-secret"))))
    with pytest.raises(Denied):
        await wrong.check()
    await wrong.aclose()
    absent = S3Objects(S3Location.parse(s3.url("no-such-bucket-here")))
    with pytest.raises(NoSuchBucket):
        await absent.check()
    await absent.aclose()
    down = S3Objects(S3Location.parse("http://k:s@127.0.0.1:9/bucket"))
    started = time.monotonic()
    with pytest.raises(Unreachable):
        await down.check()
    assert time.monotonic() - started < 6
    await down.aclose()


def test_an_object_store_url_names_its_parts_and_hides_its_secret() -> None:
    where = S3Location.parse("https://AK%2F1:s%40cret@s3.example.org:9000/bucket/some/prefix")
    assert (where.endpoint, where.bucket, where.prefix) == (
        "https://s3.example.org:9000",
        "bucket",
        "some/prefix",
    )
    assert where.credentials.secret_access_key == "s@cret"
    assert "s@cret" not in repr(where)
    for bad in ("ftp://k:s@h/b", "http://h/b", "http://k:s@h/"):
        with pytest.raises(ValueError):
            S3Location.parse(bad)
