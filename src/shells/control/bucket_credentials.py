"""A tenant's bucket credentials stored once and named by mounts and syncs (docs/storage.md).

``POST /v1/bucket-credentials {"name", "access_key_id", "secret_access_key"}`` seals the secret
with the instance's key (``SecretBox``, bound to the tenant and the row's id); no answer, audit
event or log ever holds it. A create that names them (``"credentials": "name"`` in a mount or a
sync) gets the keys copied into its own sealed rows before any check, exactly as inline keys would
be: deleting the named credentials later changes no shell made with them, and a name of another
tenant is not found. Storing and deleting them needs ``tenant.admin`` (whoever stores a key decides
which buckets every member can reach with it); naming them at create needs only ``shells.create``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..domain.errors import BucketCredentialsNotFound, InvalidRequest, QuotaExceeded
from ..domain.ids import new_id
from ..domain.limits import MAX_BUCKET_CREDENTIALS_PER_TENANT
from ..domain.mounts import BucketCredentials, NamedCredentials, check_credentials_name
from ..domain.principal import Principal, Scope
from ..store.bucket_credentials import BucketCredentialRecord, BucketCredentialsStore
from .auth import require
from .context import ControlContext
from .mount_requests import MAX_CREDENTIAL_CHARS
from .requests import CreateShellRequest
from .secret_box import SecretBox


def _sealed_as(rec: BucketCredentialRecord) -> str:
    return f"bucket-credentials:{rec.id}"


def _key_part(value: str, field: str) -> str:
    if not value or len(value) > MAX_CREDENTIAL_CHARS or "\n" in value or "\r" in value:
        raise InvalidRequest(
            f"'{field}' must be 1 to {MAX_CREDENTIAL_CHARS} characters on one line.", {"field": field}
        )
    return value


class BucketCredentialsBook:
    def __init__(self, ctx: ControlContext, box: SecretBox) -> None:
        self.ctx, self.box = ctx, box
        self.records = BucketCredentialsStore(ctx.store)

    def create(
        self, principal: Principal, name: str, access_key_id: str, secret_access_key: str, door: str
    ) -> BucketCredentialRecord:
        require(principal, Scope.TENANT_ADMIN)
        check_credentials_name(name)
        key_id = _key_part(access_key_id, "access_key_id")
        secret = _key_part(secret_access_key, "secret_access_key")
        if self.records.count(principal.tenant) >= MAX_BUCKET_CREDENTIALS_PER_TENANT:
            raise QuotaExceeded(
                f"A tenant may store at most {MAX_BUCKET_CREDENTIALS_PER_TENANT} bucket credentials; "
                "delete some first.",
                {"limit": MAX_BUCKET_CREDENTIALS_PER_TENANT},
            )
        rec = BucketCredentialRecord(new_id("bcred"), principal.tenant, name, key_id, datetime.now(UTC))
        sealed = self.box.seal(rec.tenant, _sealed_as(rec), secret)
        self.records.add(rec, sealed, self._draft(principal, rec, "bucket_credentials.create", door))
        return rec

    def _draft(self, principal: Principal, rec: BucketCredentialRecord, action: str, door: str) -> Any:
        details = {"name": rec.name, "access_key_id": rec.access_key_id}
        return self.ctx.draft(
            principal, None, door=door, kind="bucket_credentials", action=action, details=details,
            target=rec.id,
        )  # fmt: skip

    def list(self, principal: Principal) -> list[BucketCredentialRecord]:
        require(principal, Scope.READ)
        return self.records.list(principal.tenant)

    def _find(
        self, principal: Principal, name: str, field: str = "name"
    ) -> tuple[BucketCredentialRecord, bytes]:
        found = self.records.get(principal.tenant, name)
        if found is None:
            raise BucketCredentialsNotFound(
                f"The tenant has no bucket credentials named {name!r}; store them with "
                "POST /v1/bucket-credentials.",
                {"field": field, "name": name},
            )
        return found

    def delete(self, principal: Principal, name: str, door: str) -> None:
        """Shells made with them keep their own sealed copy: nothing running changes."""
        require(principal, Scope.TENANT_ADMIN)
        rec, _ = self._find(principal, name)
        self.records.delete(
            rec.tenant, rec.name, self._draft(principal, rec, "bucket_credentials.delete", door)
        )

    def keys(self, principal: Principal, name: str, field: str) -> BucketCredentials:
        rec, sealed = self._find(principal, name, field)
        return BucketCredentials(rec.access_key_id, self.box.open(rec.tenant, _sealed_as(rec), sealed))

    def resolve(self, principal: Principal, req: CreateShellRequest) -> CreateShellRequest:
        """``req`` with every named credential of its mounts and sync replaced by the keys."""
        buckets = tuple(
            replace(b, credentials=self.keys(principal, b.credentials.name, f"mounts[{i}].credentials"))
            if isinstance(b.credentials, NamedCredentials)
            else b
            for i, b in enumerate(req.buckets)
        )
        sync = req.sync
        if sync is not None and sync.credentials_name is not None:
            keys = self.keys(principal, sync.credentials_name, "sync.credentials")
            sync = replace(sync, access_key_id=keys.access_key_id, secret_access_key=keys.secret_access_key)
        return replace(req, buckets=buckets, sync=sync)
