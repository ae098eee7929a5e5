"""Storage of shells on remote nodes, end to end: two node agents, each on its own "machine"
(network namespace and address on a test bridge) with its own connection to a real S3 server
(SeaweedFS, authentication enforced), and a control plane driving them. A volume written by a shell
on node-a is read by a shell on node-b (node-a's copy is stored first, node-b fetches it; deleting
the volume removes both copies); a bucket mount served by a remote node's FUSE process sees a file
written through the S3 API and the other way round, with the user's key nowhere in the shell, and a
wrong key is the same typed error as on one box; a remote shell's /workspace lands in the user's
bucket, read through its node, and is complete when its delete answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from shells.sdk import BucketDenied, BucketMount, Shell, Shells, VolumeAttach
from tests.support import s3
from tests.support.s3 import S3Server

from .harness import ServerProcess, serving
from .node_link import NodeMachine
from .test_bucket_mounts import BUCKET as USER_BUCKET
from .test_bucket_mounts import _make_bucket, put
from .test_bucket_mounts import get as s3_get
from .test_node_drain import machines, store_server, store_url
from .test_node_remote import on_node

__all__ = ["machines", "store_server"]  # the drain test's cluster fixtures, made again for this module

WAIT_S = 30.0


@pytest.fixture(scope="module")
def user_bucket(store_server: S3Server) -> S3Server:
    """The server with the user's own bucket on it (the user's key, as test_bucket_mounts makes it)."""
    anyio.run(_make_bucket, store_server, USER_BUCKET)
    return store_server


def endpoint(server: S3Server, machines: tuple[NodeMachine, NodeMachine]) -> str:
    """The S3 endpoint as the user names it: this machine's address on node-a's bridge, which both
    nodes reach (node-b through its default route) and the control plane too."""
    return server.endpoint.replace("127.0.0.1", machines[0].gateway)


@pytest.fixture(scope="module")
def control(
    machines: tuple[NodeMachine, NodeMachine],
    user_bucket: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    where = endpoint(user_bucket, machines).removeprefix("http://")
    env = {
        "SHELLS_NODES": ",".join(m.url for m in machines),
        "SHELLS_CLUSTER_SECRET_FILE": str(machines[0].secret_file),
        "SHELLS_OBJECT_STORE": store_url(user_bucket),
        "SHELLS_MOUNT_ENDPOINTS_LOCAL": "1",  # the test's S3 server is on this machine
        "SHELLS_SYNC_PRIVATE_ENDPOINTS": where,
        "SHELLS_SYNC_INTERVAL_S": "1",
    }
    server = ServerProcess(Path(tmp_path_factory.mktemp("control")), warm_pool=0, env=env)
    with serving(server, "storage-cluster-control") as running:
        yield running


def on(node: str, client: Shells, control: ServerProcess, **options: Any) -> Shell:
    """A new shell on ``node`` (shells go to the nodes in turn; one made elsewhere is deleted)."""
    for _ in range(3):
        shell = client.create(**options)
        if on_node(control, shell.id) == node:
            return shell
        shell.kill()
    raise AssertionError(f"no shell was placed on {node}")


def volume_copy(machine: NodeMachine, volume_id: str) -> Path:
    return machine.data_dir / "storage" / "pool" / "volumes" / volume_id


def test_a_volume_written_on_one_node_is_read_on_another(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    a, b = machines
    client = control.client()
    volume = client.volumes.create("results", size_gib=1)
    writer = on("node-a", client, control, volumes=[VolumeAttach("results", "/data")])
    try:
        writer.files.write("/data/r.txt", "written on node-a\n")
        assert writer.commands.run("install -m 0750 /dev/null /data/run.sh").exit_code == 0
        writer.stop()  # let go: node-a's copy is dirty until it is stored
        reader = on("node-b", client, control, volumes=[VolumeAttach("results", "/data", read_only=True)])
        try:
            assert reader.files.read("/data/r.txt") == b"written on node-a\n"
            assert reader.commands.run("stat -c %a /data/run.sh").stdout == "750\n"
            denied = reader.commands.run("touch /data/nope")
            assert denied.exit_code != 0 and "Read-only file system" in denied.stderr
        finally:
            reader.kill()
        stored = client.volumes.get("results")
        assert stored.durable_at is not None
        assert volume_copy(a, volume.id).exists() and volume_copy(b, volume.id).exists()
    finally:
        writer.kill()
    client.volumes.delete("results")
    assert not volume_copy(a, volume.id).exists() and not volume_copy(b, volume.id).exists()


def test_a_bucket_mount_on_a_remote_node_serves_the_users_bucket(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine], store_server: S3Server
) -> None:
    client = control.client()
    key_id, secret = s3.USER
    url = endpoint(store_server, machines)

    put(store_server, "in/from-s3.txt", b"put through the S3 API")
    with pytest.raises(BucketDenied) as refused:  # the same typed error as on one box
        client.create(mounts=[BucketMount(USER_BUCKET, url, "/mnt/b", key_id, "not-the-secret")])
    assert refused.value.details.get("field") == "mounts[0].credentials"

    shell = on("node-b", client, control, mounts=[BucketMount(USER_BUCKET, url, "/mnt/b", key_id, secret)])
    try:
        assert shell.files.read("/mnt/b/in/from-s3.txt") == b"put through the S3 API"
        assert shell.commands.run("echo from-the-shell > /mnt/b/back.txt").exit_code == 0
        pattern = f"{secret[:-1]}[{secret[-1]}]"  # a grep's own command line does not match it
        found = shell.commands.run(
            f"grep -rls -e '{pattern}' /proc/[0-9]*/environ /proc/[0-9]*/cmdline /etc /root /workspace; true"
        )
        assert found.stdout == "", found.stdout  # the key is nowhere the shell can read
        shell.stop()  # waits until every written file is in the bucket
        assert s3_get(store_server, "back.txt") == b"from-the-shell\n"
    finally:
        shell.kill()


def test_a_remote_shells_workspace_lands_in_the_users_bucket(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine], store_server: S3Server
) -> None:
    client = control.client()
    key_id, secret = s3.USER
    sync = {
        "bucket": USER_BUCKET,
        "endpoint": endpoint(store_server, machines),
        "prefix": "run-1",
        "credentials": {"access_key_id": key_id, "secret_access_key": secret},
    }
    shell = on("node-a", client, control, sync=sync)
    try:
        assert shell.commands.run("mkdir /workspace/out").exit_code == 0
        shell.files.write("/workspace/out/first.txt", "while it runs")
        deadline = time.monotonic() + WAIT_S
        while s3_get(store_server, "run-1/out/first.txt") is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert s3_get(store_server, "run-1/out/first.txt") == b"while it runs"
        shell.files.write("/workspace/last.txt", "just before the delete")
    finally:
        shell.kill()
    assert s3_get(store_server, "run-1/last.txt") == b"just before the delete"


def test_a_stopped_shell_drained_to_another_node_takes_its_volume_along(
    control: ServerProcess, machines: tuple[NodeMachine, NodeMachine]
) -> None:
    """Its own last writes on node-a (never stored: it only stopped) are stored as the move begins and
    fetched onto node-b, where it reads and writes them once started."""
    client = control.client()
    volume = client.volumes.create("moving", size_gib=1)
    shell = on("node-a", client, control, volumes=[VolumeAttach("moving", "/data")])
    try:
        shell.files.write("/data/before.txt", "written on node-a before the move")
        shell.stop()
        drained = client.nodes.drain("node-a")
        assert drained.moved == [{"shell": shell.id, "to": "node-b"}], drained.left
        assert client.nodes.uncordon("node-a")
        shell.start()
        assert shell.refresh().node == "node-b"
        assert shell.files.read("/data/before.txt") == b"written on node-a before the move"
        shell.files.write("/data/after.txt", "written on node-b")
    finally:
        shell.kill()
    assert volume_copy(machines[1], volume.id).exists()
    client.volumes.delete("moving")
