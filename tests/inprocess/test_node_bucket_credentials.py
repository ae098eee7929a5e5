"""Named bucket credentials (docs/storage.md) on the fake node against a real S3 server (SeaweedFS,
authentication enforced): stored once per tenant with the secret sealed (no answer, audit event or
record column holds it in the clear), named by a workspace sync instead of keys, invisible to
another tenant, and deleting them changes no shell made with them. Bad names and refused keys get
the one bucket error vocabulary of mounts and sync. (Bucket mounts naming them, end to end:
tests/e2e/test_bucket_credentials.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shells.domain.errors import (
    AlreadyExists,
    BucketCredentialsNotFound,
    BucketDenied,
    InvalidRequest,
    PermissionDenied,
)
from shells.objects.store import S3Location, S3Objects
from shells.sdk import AsyncShells
from tests.support.s3 import USER, S3Server

from ..support.inprocess import Instance, serving
from ..support.waiting import eventually

pytestmark = pytest.mark.anyio
MEMBER = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files"]


@pytest.fixture
async def instance(tmp_path: Path, s3: S3Server) -> AsyncIterator[Instance]:
    async with serving(tmp_path, sync_private_endpoints=(s3.endpoint.split("://")[1],)) as running:
        yield running


@pytest.fixture
async def bucket(s3: S3Server) -> AsyncIterator[S3Objects]:
    objects = S3Objects(S3Location.parse(s3.url("named-creds", identity=USER, prefix="out")))
    await objects.create_bucket()
    yield objects
    await objects.aclose()


async def test_stored_credentials_are_named_by_a_sync_and_never_shown(
    instance: Instance, admin: AsyncShells, s3: S3Server, bucket: S3Objects
) -> None:
    stored = await admin.bucket_credentials.create("team-key", USER[0], USER[1])
    assert (stored.name, stored.access_key_id) == ("team-key", USER[0])
    with pytest.raises(AlreadyExists):
        await admin.bucket_credentials.create("team-key", USER[0], USER[1])
    await admin.bucket_credentials.create("wrong-key", USER[0], "not-the-secret")
    listed = await admin.bucket_credentials.list()
    assert [c.name for c in listed] == ["team-key", "wrong-key"]
    with instance.control.ctx.store.engine.connect() as db:  # sealed at rest
        raw = db.execute(text("SELECT sealed FROM bucket_credentials")).scalars().all()
    assert raw and all(USER[1].encode() not in bytes(v) for v in raw)

    sync = {
        "bucket": bucket.where.bucket,
        "endpoint": s3.endpoint,
        "prefix": "out",
        "credentials": "team-key",
    }
    shell = await admin.create("python", sync=sync)
    await shell.files.write("/workspace/r.txt", b"named")
    await eventually(lambda: bucket.head("r.txt"), what="the file in the user's bucket")
    assert (await shell.sync_status()).access_key_id == USER[0]

    # Deleting them changes no shell made with them: its sync keeps its own sealed copy.
    await admin.bucket_credentials.delete("team-key")
    with pytest.raises(BucketCredentialsNotFound):
        await admin.bucket_credentials.delete("team-key")
    await shell.files.write("/workspace/after.txt", b"still synced")
    await eventually(lambda: bucket.head("after.txt"), what="a file sent after the delete")
    with pytest.raises(BucketCredentialsNotFound) as missing:
        await admin.create("python", sync=sync)
    assert missing.value.details["field"] == "sync.credentials"

    # A stored key the bucket refuses is the same error as an inline one.
    with pytest.raises(BucketDenied) as denied:
        await admin.create("python", sync=sync | {"credentials": "wrong-key"})
    assert denied.value.details["reason"] == "denied" and "not-the-secret" not in str(denied.value)
    with pytest.raises(InvalidRequest):
        await admin.create("python", sync=sync | {"credentials": "Not A Name"})

    everything = " ".join(repr(e) for e in await admin.audit())
    assert "bucket_credentials.create" in everything and USER[1] not in everything
    await shell.kill()


async def test_another_tenant_does_not_see_or_use_them_and_members_only_use_them(
    instance: Instance, admin: AsyncShells, s3: S3Server, bucket: S3Objects
) -> None:
    await admin.bucket_credentials.create("team-key", USER[0], USER[1])
    await admin.tenants.create("acme")
    member = await admin.tokens.create(MEMBER, tenant="acme", principal="ana")
    async with instance.client(member.token) as ana:
        assert await ana.bucket_credentials.list() == []
        sync = {"bucket": bucket.where.bucket, "endpoint": s3.endpoint, "credentials": "team-key"}
        with pytest.raises(BucketCredentialsNotFound):
            await ana.create("python", sync=sync)
        with pytest.raises(PermissionDenied):  # storing needs tenant.admin
            await ana.bucket_credentials.create("mine", USER[0], USER[1])
        assert await ana.list() == []  # nothing half-created
