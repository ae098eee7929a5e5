"""Volumes and bucket mounts (docs/storage.md): the tenant's volumes (create, list, delete), what a
create may mount and the checks it passes first, and what a shell's start mounts.

A bucket is checked from the server before any record exists (a listing of one key, with a short
timeout): wrong credentials, a missing bucket or an endpoint that does not answer are a typed 4xx at
once, never a shell hung on its mount. The credentials are then sealed (``SecretBox``) into the
shell's mount rows; they are opened only to hand them to the host's FUSE process at each start."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..domain.errors import (
    FeatureUnavailable,
    QuotaExceeded,
    VolumeInUse,
    VolumeNotFound,
)
from ..domain.ids import new_id
from ..domain.isolation import Runtime
from ..domain.limits import MAX_VOLUME_GIB, MAX_VOLUMES_PER_TENANT, MOUNT_CHECK_TIMEOUT_S
from ..domain.mounts import BucketCredentials, BucketMount, check_volume_name
from ..domain.principal import Principal, Scope
from ..domain.shell import ShellRecord
from ..objects.sigv4 import Credentials
from ..objects.store import S3Location
from ..runtime.backend import VolumeMount
from ..runtime.host import bucket_fuse
from ..runtime.microvm import shares as vm_shares
from ..runtime.volumes import HostVolumes
from ..store.storage import MountRow, StorageStore, VolumeRecord
from .auth import require
from .bucket_access import bucket_error, check_bucket
from .context import ControlContext
from .requests import CreateShellRequest
from .secret_box import SecretBox
from .volume_store import VolumeStore
from .webhook_target import OwnAddresses, TargetRefused, resolve

MOUNT_CLASSES = frozenset({Runtime.CONTAINER, Runtime.MICROVM})
"""The classes whose shells take bucket mounts and volumes (docs/storage.md: why not the others yet)."""


@dataclass(frozen=True)
class Attachments:
    """What a create mounts, checked: its buckets and the volumes it named, found."""

    buckets: tuple[BucketMount, ...] = ()
    volumes: tuple[tuple[VolumeRecord, str, bool], ...] = ()
    """(volume, path inside, read-only)."""

    @property
    def empty(self) -> bool:
        return not self.buckets and not self.volumes


class Storage:
    def __init__(
        self, ctx: ControlContext, box: SecretBox, volumes: HostVolumes | None, own: OwnAddresses
    ) -> None:
        self.ctx = ctx
        self.own_networks = own
        """This host's addresses and the shells' range (as for webhooks)."""
        self.box = box
        self.host = volumes
        """This machine's volume copies (one box: made at the volume's create); None on a cluster's
        control plane, whose nodes keep the copies (``kept``)."""
        self.store = StorageStore(ctx.store)
        self.kept: VolumeStore | None = None
        """Volumes in the object store (set by ``Control`` when this host holds volumes)."""

    # volumes --------------------------------------------------------------------------------------
    def _kept(self) -> VolumeStore:
        if self.kept is None:
            raise FeatureUnavailable("Volumes are not available on this server.")
        return self.kept

    async def create_volume(self, principal: Principal, name: str, size_gib: int, door: str) -> VolumeRecord:
        require(principal, Scope.CREATE)
        check_volume_name(name)
        if not 1 <= size_gib <= MAX_VOLUME_GIB:
            raise QuotaExceeded(
                f"'size_gib' must be from 1 to {MAX_VOLUME_GIB}.",
                {"field": "size_gib", "limit": MAX_VOLUME_GIB, "value": size_gib},
            )
        self._kept()
        if len(self.store.volumes(principal.tenant)) >= MAX_VOLUMES_PER_TENANT:
            raise QuotaExceeded(
                f"A tenant has at most {MAX_VOLUMES_PER_TENANT} volumes; delete one first.",
                {"limit": MAX_VOLUMES_PER_TENANT, "value": MAX_VOLUMES_PER_TENANT},
            )
        rec = VolumeRecord(new_id("vol"), principal.tenant, name, size_gib, datetime.now(UTC))
        draft = self._draft(principal, rec, door, "volume.create", {"size_gib": size_gib})
        if self.host is None:  # a cluster: a node makes its copy when a shell there attaches it
            self.store.add_volume(rec, draft)
            return rec
        await self.host.create(rec.id, size_gib * 1024**3)
        try:
            self.store.add_volume(rec, draft)
        except BaseException:
            await self.host.delete(rec.id)
            raise
        return rec

    def _draft(
        self, principal: Principal, rec: VolumeRecord, door: str, action: str, details: dict[str, Any]
    ) -> Any:
        return self.ctx.draft(
            principal,
            None,
            door=door,
            kind="volume",
            action=action,
            details={"volume": rec.name, **details},
            target=rec.id,
        )

    def find(self, principal: Principal, name: str) -> VolumeRecord:
        rec = self.store.volume(principal.tenant, name)
        if rec is None:
            raise VolumeNotFound(f"The tenant has no volume named {name!r}.", {"name": name})
        return rec

    def public(self, rec: VolumeRecord) -> dict[str, Any]:
        holders = [{"shell_id": sid, "read_only": ro} for sid, ro in self.store.holders(rec.id)]
        used = self.host.used_bytes(rec.id) if self.host is not None else None
        return rec.to_public(holders) | {"used_bytes": used}

    def list_volumes(self, principal: Principal) -> list[dict[str, Any]]:
        require(principal, Scope.READ)
        return [self.public(v) for v in self.store.volumes(principal.tenant)]

    def get_volume(self, principal: Principal, name: str) -> dict[str, Any]:
        require(principal, Scope.READ)
        return self.public(self.find(principal, name))

    async def delete_volume(self, principal: Principal, name: str, door: str) -> None:
        """Delete the volume and its data; 409 while any shell that may start again holds it."""
        require(principal, Scope.DESTROY)
        rec = self.find(principal, name)
        holders = self.store.holders(rec.id)
        if holders:
            raise VolumeInUse(
                f"Volume {name!r} is attached to {len(holders)} shell(s) ({holders[0][0]}, …); delete "
                "them first.",
                {"shells": [sid for sid, _ in holders]},
            )
        self.store.delete_volume(rec.id, self._draft(principal, rec, door, "volume.delete", {}))
        await self._kept().remove(rec)

    def gib_hours(self, tenant: str | None, start: datetime, end: datetime) -> dict[str, Decimal]:
        """Volume storage in GiB-hours per tenant over [start, end): each volume's size times the
        hours it existed in the window, never past now (a window may end in the future)."""
        out: dict[str, Decimal] = {}
        now = self.ctx.store.clock.now()
        for v in self.store.volumes(tenant, with_deleted=True):
            since, until = max(v.created_at, start), min(v.deleted_at or now, end)
            if until > since:
                hours = Decimal((until - since).total_seconds()) / 3600
                out[v.tenant] = out.get(v.tenant, Decimal(0)) + hours * v.size_gib
        return out

    # create ---------------------------------------------------------------------------------------
    async def check(self, principal: Principal, req: CreateShellRequest, node: str) -> Attachments:
        """The mounts a create on ``node`` asks for, checked (its buckets answered, its volumes found
        and their newest copies on that node); call ``claim`` with no await between it and the
        shell's insert."""
        if not req.buckets and not req.volumes:
            return Attachments()
        if req.runtime not in MOUNT_CLASSES:
            raise FeatureUnavailable(
                f"Bucket mounts and volumes are not available for {req.runtime} shells yet; use runtime "
                "'container' or 'microvm'.",
                {"field": "mounts" if req.buckets else "volumes"},
            )
        if req.runtime is Runtime.MICROVM and (why := vm_shares.available()) is not None:
            raise FeatureUnavailable(
                f"Bucket mounts and volumes are not available for microvm shells on this host: {why}.",
                {"field": "mounts" if req.buckets else "volumes"},
            )
        if req.buckets and (why := bucket_fuse.available()) is not None:
            raise FeatureUnavailable(
                f"Bucket mounts are not available on this host: {why}.", {"field": "mounts"}
            )
        volumes = tuple((self.find(principal, a.name), a.path, a.read_only) for a in req.volumes)
        for rec, _path, _ro in volumes:  # its newest copy on the node, fetched if another wrote it
            await self._kept().ensure_on(node, rec)
        for i, bucket in enumerate(req.buckets):
            await self._check_endpoint(bucket, f"mounts[{i}]")
            await _check_bucket(bucket, f"mounts[{i}]")
        return Attachments(req.buckets, volumes)

    async def _check_endpoint(self, bucket: BucketMount, field: str) -> None:
        """The host connects to the endpoint (the check, then rclone): never to a metadata or
        link-local address, nor to this host or its shells unless the operator allows it."""
        own = [] if self.ctx.settings.mount_endpoints_local else list(self.own_networks())
        try:
            await resolve(bucket.endpoint, lambda: own)
        except TargetRefused as exc:
            local = "loopback" in str(exc) or "this server" in str(exc)
            if not (local and self.ctx.settings.mount_endpoints_local):
                where = S3Location(bucket.endpoint, bucket.bucket, bucket.prefix, Credentials("", "", ""))
                raise bucket_error(exc, where, field) from None

    def claim(self, att: Attachments) -> None:
        """Refuse a read-write attachment of a volume another shell holds read-write: one writer at
        a time, any number of readers (beside it too: they see its files as it writes them)."""
        for rec, _path, read_only in att.volumes:
            if read_only:
                continue
            writer = next((sid for sid, ro in self.store.holders(rec.id) if not ro), None)
            if writer is not None:
                raise VolumeInUse(
                    f"Volume {rec.name!r} is attached read-write to {writer}; one shell at a time may "
                    "write it. Attach it read-only, or delete that shell first.",
                    {"volume": rec.name, "shell_id": writer},
                )

    def attach(self, principal: Principal, shell: ShellRecord, att: Attachments, door: str) -> None:
        """Record the shell's mounts (credentials sealed) with one audit event each."""
        rows: list[MountRow] = []
        drafts = []
        for i, b in enumerate(att.buckets):
            sealed = self.box.seal(shell.tenant, _seal_name(shell.id, i), _creds_json(b.keys()))
            rows.append(MountRow(i, b.path, b.read_only, None, b.bucket, b.endpoint, b.prefix, sealed))
            drafts.append(
                self.ctx.draft(
                    principal, shell, door=door, kind="mount", action="mount.bucket", details=b.public()
                )
            )
        for j, (rec, path, read_only) in enumerate(att.volumes, start=len(att.buckets)):
            rows.append(MountRow(j, path, read_only, volume_id=rec.id))
            details = {"volume": rec.name, "path": path, "read_only": read_only}
            drafts.append(
                self.ctx.draft(
                    principal, shell, door=door, kind="mount", action="mount.volume", details=details
                )
            )
        self.store.give(shell.id, rows, drafts)

    def mounts_of(self, shell: ShellRecord) -> tuple[tuple[BucketMount, ...], tuple[VolumeMount, ...]]:
        """What the shell's start mounts, credentials opened (for the backend only)."""
        buckets: list[BucketMount] = []
        volumes: list[VolumeMount] = []
        for r in self.store.mounts_of(shell.id):
            if r.volume_id is not None and self.kept is not None:
                volumes.append(VolumeMount(self.kept.source(shell.node, r.volume_id), r.path, r.read_only))
                if not r.read_only:
                    self.kept.writing(shell.node, r.volume_id)
            elif r.bucket is not None and r.endpoint is not None and r.sealed is not None:
                creds = json.loads(self.box.open(shell.tenant, _seal_name(shell.id, r.position), r.sealed))
                buckets.append(
                    BucketMount(
                        r.bucket,
                        r.endpoint,
                        r.prefix or "",
                        r.path,
                        r.read_only,
                        BucketCredentials(creds["access_key_id"], creds["secret_access_key"]),
                    )
                )
        return tuple(buckets), tuple(volumes)

    async def follow(self, shell: ShellRecord, node: str) -> None:
        """The shell is about to be made on ``node`` (a move): its volumes' newest copies there, its
        own unsaved writes on its old node stored first."""
        if self.kept is None:
            return
        for r in self.store.mounts_of(shell.id):
            rec = self.store.volume_by_id(r.volume_id) if r.volume_id is not None else None
            if rec is not None:
                await self.kept.ensure_on(node, rec, moving=shell.id)

    def released(self, shell: ShellRecord) -> None:
        """The shell stopped or is gone: the volumes it wrote go to the object store."""
        if self.kept is not None:
            rows = self.store.mounts_of(shell.id)
            written = [r.volume_id for r in rows if r.volume_id is not None and not r.read_only]
            self.kept.released(shell.node, written)

    def public_mounts(self, shell_id: str) -> dict[str, list[dict[str, Any]]]:
        """The shell's mounts as shown on it: never a credential."""
        rows = self.store.mounts_of(shell_id)
        names = self.store.volume_names({r.volume_id for r in rows if r.volume_id is not None})
        return {
            "mounts": [
                {"bucket": r.bucket, "endpoint": r.endpoint, "prefix": r.prefix, "path": r.path,
                 "read_only": r.read_only}
                for r in rows
                if r.volume_id is None
            ],
            "volumes": [
                {"name": names.get(r.volume_id, r.volume_id), "path": r.path, "read_only": r.read_only}
                for r in rows
                if r.volume_id is not None
            ],
        }  # fmt: skip


def _seal_name(shell_id: str, position: int) -> str:
    return f"mount:{shell_id}:{position}"


def _creds_json(creds: BucketCredentials) -> str:
    return json.dumps({"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key})


async def _check_bucket(bucket: BucketMount, field: str) -> None:
    """List one key of the bucket as the user's credentials: the typed 4xx of every way it fails."""
    keys = bucket.keys()
    credentials = Credentials(keys.access_key_id, keys.secret_access_key, "us-east-1")
    where = S3Location(bucket.endpoint, bucket.bucket, bucket.prefix, credentials)
    await check_bucket(where, field, MOUNT_CHECK_TIMEOUT_S)
