"""A container snapshot outlives its machine (docs/storage.md): instance A snapshots a shell, the
snapshot becomes durable in a real S3 server (SeaweedFS, authentication enforced), A stops and its
data dir is purged; instance B, sharing only the record and the object store, with an empty pool,
creates a shell from the snapshot and finds the files, in /workspace and in the root filesystem.
A template saved on A, and a wasm shell's snapshot, start shells on B the same way. Deleting the
snapshots and the template then removes their blobs from the bucket."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from shells.objects.store import BLOBS, S3Location, S3Objects
from shells.sdk import Shells, Snapshot
from tests.support.s3 import S3Server

from .harness import ServerProcess, serving

DURABLE_TIMEOUT_S = 300.0
"""Packing a python:1 root filesystem with zstd on a loaded 2-core machine takes tens of seconds."""


def _store(url: str) -> S3Objects:
    return S3Objects(S3Location.parse(url))


async def _make_bucket(url: str) -> None:
    objects = _store(url)
    try:
        await objects.create_bucket()
    finally:
        await objects.aclose()


async def _blobs(url: str) -> list[str]:
    objects = _store(url)
    try:
        return await objects.list(BLOBS)
    finally:
        await objects.aclose()


def wait_durable(client: Shells, shell_id: str, server: ServerProcess) -> Snapshot:
    """The shell's first snapshot once it is durable (within ``DURABLE_TIMEOUT_S``)."""
    deadline = time.monotonic() + DURABLE_TIMEOUT_S
    while not (listed := client.snapshots.list(shell_id)[0]).durable:
        assert time.monotonic() < deadline, f"not durable within {DURABLE_TIMEOUT_S} s:\n{server.log_tail()}"
        time.sleep(0.5)
    assert listed.durable_at is not None and listed.size_bytes
    return listed


def hand_over(a: ServerProcess, b: ServerProcess) -> None:
    """Stop ``a`` and give ``b`` its record (WAL included: a cluster shares it), admin token and
    secrets key (a cluster's replicas share it too: the record's egress CA is sealed with it)."""
    a.stop()
    b.data_dir.mkdir(parents=True)
    for kept in ("admin-token", "secrets.key"):
        shutil.copy2(a.data_dir / kept, b.data_dir / kept)
    record_a = sqlite3.connect(a.data_dir / "shells.db")
    record_b = sqlite3.connect(b.data_dir / "shells.db")
    with closing(record_a), closing(record_b):
        record_a.backup(record_b)


def test_a_snapshot_made_on_one_instance_starts_a_shell_on_another(s3: S3Server, data_root: Path) -> None:
    url = s3.url("shells-durable", prefix="instance")
    asyncio.run(_make_bucket(url))
    env = {"SHELLS_OBJECT_STORE": url}
    a = ServerProcess(data_root / "durable-a", warm_pool=0, env=env)
    b = ServerProcess(data_root / "durable-b", warm_pool=0, env=env)
    with serving(a, "durable-a"), a.client() as client:
        shell = client.create("python")
        shell.files.write("/workspace/kept.txt", b"made on a")
        assert shell.commands.run("echo rootfs-too > /root/kept").exit_code == 0
        snap = shell.snapshot()
        assert not snap.durable
        wait_durable(client, shell.id, a)
        deadline = time.monotonic() + DURABLE_TIMEOUT_S
        client.templates.save(shell.id, "kept:1")
        wasm = client.create("python", runtime="wasm")
        wasm.files.write("/workspace/w.txt", b"wasm on a")
        wasm_snap = wasm.snapshot()
        while not client.templates.get("kept:1").durable or not client.snapshots.list(wasm.id)[0].durable:
            assert time.monotonic() < deadline, f"template or wasm snapshot not durable:\n{a.log_tail()}"
            time.sleep(0.5)
        hand_over(a, b)
    assert not list(a.data_dir.rglob("*.img")), "a's pool outlived its purge"
    # the snapshot's rootfs and workspace (the template's rootfs is the same bytes, stored once) and
    # the wasm snapshot's workspace
    assert len(asyncio.run(_blobs(url))) == 3

    with serving(b, "durable-b"), b.client() as client:
        copy = client.create("python", snapshot=snap.id)
        assert copy.files.read("/workspace/kept.txt") == b"made on a"
        assert copy.files.read("/root/kept") == b"rootfs-too\n"
        with client.create("python", template="kept:1") as from_template:
            assert from_template.files.read("/root/kept") == b"rootfs-too\n"
        with client.create("python", runtime="wasm", snapshot=wasm_snap.id) as wasm_copy:
            assert wasm_copy.files.read("/workspace/w.txt") == b"wasm on a"
        client.snapshots.delete(wasm_snap.id)
        client.snapshots.delete(snap.id)
        assert len(asyncio.run(_blobs(url))) == 1  # the template still names the rootfs
        assert copy.files.read("/workspace/kept.txt") == b"made on a"
        copy.kill()
        client.templates.delete("kept:1")
        assert asyncio.run(_blobs(url)) == []
