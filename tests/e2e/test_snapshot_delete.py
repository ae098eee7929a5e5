"""Deleting a snapshot through Shells' own SDK (async and sync): the quota slot is free at once,
shells made from it keep running, new ones can no longer name it, and another tenant cannot touch it."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from shells import AsyncShells, Shells
from shells.sdk import QuotaExceeded, SnapshotNotFound

from .harness import ServerProcess

SCOPES = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files"]


def tenant_token(server: ServerProcess, **quotas: int) -> str:
    """A token of a new tenant with these quotas."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        name = f"snaps-{secrets.token_hex(3)}"
        admin.post("/v1/tenants", json={"name": name, "quotas": quotas}).raise_for_status()
        r = admin.post("/v1/tokens", json={"scopes": SCOPES, "tenant": name, "principal": "owner"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


@pytest.mark.anyio
async def test_deleting_a_snapshot_frees_its_slot_and_spares_shells_from_it(server: ServerProcess) -> None:
    async with AsyncShells(server.url, tenant_token(server, max_snapshots=1, max_shells=3)) as sdk:
        shell = await sdk.create("bash")
        copy = None
        try:
            await shell.files.write("/workspace/kept", b"snapped")
            snap = await shell.snapshot("first")
            with pytest.raises(QuotaExceeded):
                await shell.snapshot("second")
            copy = await sdk.create("bash", snapshot=snap.id)
            await sdk.snapshots.delete(snap.id)
            assert await sdk.snapshots.list() == []
            assert await copy.files.read("/workspace/kept") == b"snapped"  # its disks are its own
            with pytest.raises(SnapshotNotFound):
                await sdk.create("bash", snapshot=snap.id)
            with pytest.raises(SnapshotNotFound):
                await sdk.snapshots.delete(snap.id)
            again = await shell.snapshot("second")  # the slot is free
            assert [s.id for s in await sdk.snapshots.list()] == [again.id]
        finally:
            for s in (shell, copy):
                if s is not None:
                    await s.kill()


def test_another_tenants_snapshot_is_not_found_and_stays(server: ServerProcess) -> None:
    with Shells(server.url, server.token) as owner:
        shell = owner.create("bash")
        try:
            snap = shell.snapshot()
            with Shells(server.url, tenant_token(server)) as stranger, pytest.raises(SnapshotNotFound):
                stranger.snapshots.delete(snap.id)
            assert [s.id for s in owner.snapshots.list(shell.id)] == [snap.id]
            owner.snapshots.delete(snap.id)
            assert owner.snapshots.list(shell.id) == []
            events: Any = httpx.get(
                f"{server.url}/v1/audit",
                params={"action": "delete_snapshot", "shell": shell.id},
                headers={"Authorization": f"Bearer {server.token}"},
            ).json()["events"]
            assert [e["details"]["snapshot"] for e in events] == [snap.id]
        finally:
            shell.kill()
