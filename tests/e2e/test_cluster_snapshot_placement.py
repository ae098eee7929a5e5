"""A shell made from a snapshot on a cluster starts where the snapshot is (docs/cluster.md, "A shell
from a snapshot"), end to end with the container class:

- on the local cluster (``make cluster-up``'s; no shared object store): new shells from a snapshot
  go to the node that took it, though placement alone would spread them over the region, and a
  create in another region is a typed 409: no node there can have the snapshot (its "durable"
  copy is in its node's own directory, which no other node reads);
- on two node agents sharing a real S3 server (SeaweedFS), as in test_node_drain.py: once the
  holder is drained, a new shell from the durable snapshot starts on the other node, which fetched
  it from the object store, with the snapshot's files in /workspace and in its root filesystem."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shells.sdk import Shell, Shells, SnapshotNotPlaceable

from .harness import ServerProcess
from .local_cluster import LocalCluster
from .node_link import NodeMachine
from .test_node_drain import (  # noqa: F401 (fixtures)
    WAIT_S,
    cli,
    control,
    machines,
    on_node_a,
    store_server,
)
from .test_node_remote import on_node


def snapshot_dir(data_dir: Path, snapshot_id: str) -> Path:
    """Where a node's container class keeps a snapshot (its pool's ``snapshots``)."""
    return data_dir / "storage" / "pool" / "snapshots" / snapshot_id


def durable(client: Shells, shell: Shell, snapshot_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not any(s.durable for s in client.snapshots.list(shell.id) if s.id == snapshot_id):
        assert time.monotonic() < deadline, "the snapshot did not become durable"
        time.sleep(0.2)


def test_shells_from_a_snapshot_go_to_the_node_that_holds_it(local_cluster: LocalCluster) -> None:
    client = local_cluster.client()
    source = client.create(region="eu")
    made: list[Shell] = []
    try:
        source.files.write("/workspace/kept.txt", "taken on the holder\n")
        snap = source.snapshot()
        holder = source.info.node
        assert snapshot_dir(local_cluster.nodes[holder].data_dir, snap.id).exists()
        for _ in range(3):  # each placement counts against the holder: spreading would leave it
            made.append(client.create(snapshot=snap.id, region="eu"))
            assert made[-1].info.node == holder
            assert made[-1].files.read("/workspace/kept.txt") == b"taken on the holder\n"
        durable(client, source, snap.id)  # stored, but in its node's own directory: no shared store
        with pytest.raises(SnapshotNotPlaceable) as refused:  # so us-1 cannot fetch it
            client.create(snapshot=snap.id, region="us")
        assert refused.value.details["nodes"] == [holder] and holder in refused.value.message
        assert not snapshot_dir(local_cluster.nodes["us-1"].data_dir, snap.id).exists()
        client.snapshots.delete(snap.id)
    finally:
        for shell in (source, *made):
            shell.kill()


def test_a_durable_snapshot_starts_on_another_node_once_its_holder_is_drained(
    control: ServerProcess,  # noqa: F811
    machines: tuple[NodeMachine, NodeMachine],  # noqa: F811
) -> None:
    a, b = machines
    client = control.client()
    source = on_node_a(client, control)
    made: list[Shell] = []
    try:
        source.files.write("/workspace/kept.txt", "taken on node-a\n")
        assert source.commands.run("echo in-the-rootfs > /etc/snap-marker").exit_code == 0
        snap = source.snapshot()
        durable(client, source, snap.id)
        made.append(client.create(snapshot=snap.id))  # node-a holds it and has room: there
        assert on_node(control, made[-1].id) == "node-a"

        done = cli(control, "admin", "node", "drain", "node-a", "--json")
        assert done.returncode == 3, done.stderr  # the running shells stay
        made.append(client.create(snapshot=snap.id))
        copy = made[-1]
        assert on_node(control, copy.id) == "node-b"
        assert copy.files.read("/workspace/kept.txt") == b"taken on node-a\n"
        assert copy.commands.run("cat /etc/snap-marker").stdout == "in-the-rootfs\n"
        assert snapshot_dir(b.data_dir, snap.id).exists()  # fetched from the object store

        client.snapshots.delete(snap.id)  # every node's copy goes
        assert not snapshot_dir(a.data_dir, snap.id).exists()
        assert not snapshot_dir(b.data_dir, snap.id).exists()
    finally:
        cli(control, "admin", "node", "uncordon", "node-a")
        for shell in (source, *made):
            shell.kill()
