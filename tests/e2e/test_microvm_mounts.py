"""Bucket mounts and volumes in microvm shells (docs/storage.md), against a real SeaweedFS with
authentication enforced: the host serves each share by virtio-fs, so files cross both ways, the
credentials are nowhere in the VM, a read-only share refuses writes even after the guest's root
remounts it writable, a volume written by one VM is read by the next, a VM with shares refuses to be
paused or snapshotted while it runs, and stop/delete leave no virtiofsd or rclone behind.

One server and two VMs for the module: microvms boot under TCG here, and each boot counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.runtime.microvm.shares import VIRTIOFSD
from shells.settings import Settings
from tests.support import s3

from .harness import ServerProcess, keep_log, running_server
from .rest import error_of, exec_wait, rest_client
from .test_bucket_mounts import assert_no_credentials, get, mount, put, until, weed  # noqa: F401  (weed: the module's S3)

MISSING = MicrovmBackend.available() or (None if Path(VIRTIOFSD).exists() else f"{VIRTIOFSD} is missing")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm shares on this host: {MISSING}")
BUSYBOX = "/.shells/busybox"


@pytest.fixture(scope="module")
def server(data_root: Path, weed: s3.S3Server) -> Iterator[ServerProcess]:  # noqa: F811
    env = {"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"}
    with running_server(data_root / "vmmounts", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(server) as client:
        yield client


def host_processes(server: ServerProcess, shell_id: str) -> list[str]:
    """The command lines of the host's virtiofsd and rclone processes serving the shell."""
    where = f"{Settings(data_dir=server.data_dir).run_dir / 'vmshares' / shell_id}/"
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if where in cmdline and ("virtiofsd" in cmdline or "rclone" in cmdline):
                found.append(cmdline)
    return found


def create_vm(api: httpx.Client, **body: Any) -> str:
    r = api.post("/v1/shells", json={"language": "python", "runtime": "microvm", **body}, timeout=300)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_buckets_and_volumes_in_a_microvm(
    api: httpx.Client,
    server: ServerProcess,
    weed: s3.S3Server,  # noqa: F811
) -> None:
    put(weed, "vm1/hello.txt", b"from the bucket\n")
    assert api.post("/v1/volumes", json={"name": "vmres", "size_gib": 1}).status_code == 201
    ids: list[str] = []
    try:
        writer = create_vm(
            api,
            mounts=[
                mount(weed, "/data", prefix="vm1"),
                mount(weed, "/workspace/ro", prefix="vm1", read_only=True),
            ],
            volumes=[{"name": "vmres", "path": "/vol"}],
        )
        ids.append(writer)
        assert len(host_processes(server, writer)) >= 5  # two rclone, three virtiofsd
        assert api.get(f"/v1/shells/{writer}").json()["idle_timeout_s"] is None  # it cannot pause
        idle = {"language": "python", "runtime": "microvm", "idle_timeout_s": 60}
        r = api.post("/v1/shells", json=idle | {"mounts": [mount(weed, "/data", prefix="vm1")]})
        error_of(r, 409, "feature_unavailable")

        # Both ways through the bucket.
        w = exec_wait(api, writer, "cat /workspace/ro/hello.txt && echo 'from the vm' > /data/out.txt")
        assert w["stdout"] == "from the bucket\n", w
        assert until("the VM's file in the bucket", lambda: get(weed, "vm1/out.txt")) == b"from the vm\n"
        put(weed, "vm1/late.txt", b"later\n")
        until(
            "an object put after the boot to appear in the VM",
            lambda: exec_wait(api, writer, "cat /data/late.txt")["stdout"] == "later\n",
        )

        # Read-only is the host's: root inside remounting it writable changes nothing.
        ro = exec_wait(
            api,
            writer,
            f"{BUSYBOX} mount -o remount,rw /workspace/ro; grep ' /workspace/ro ' /proc/mounts; "
            "echo x > /workspace/ro/new.txt",
        )
        assert " rw," in ro["stdout"] and ro["exit_code"] != 0, ro
        assert "Read-only" in ro["stderr"], ro
        assert get(weed, "vm1/new.txt") is None

        # The credentials are nowhere inside: environment, processes, kernel command line and log,
        # mounts, files.
        assert_no_credentials(
            api,
            writer,
            "cat /proc/cmdline; dmesg",
            "/etc /root /tmp /run /var /.shells /workspace /home /dev/shm --exclude-dir=ro",
        )

        # A VM with shares cannot be saved while it runs: a typed 409 and it runs on.
        for action in ("pause", "snapshot"):
            r = api.post(f"/v1/shells/{writer}/actions/{action}", json={}, timeout=120)
            error_of(r, 409, "action_not_supported")
        assert exec_wait(api, writer, "echo 'written by vm one' > /vol/v.txt")["exit_code"] == 0

        # The next VM reads the volume (read-only beside its writer), and cannot write it.
        reader = create_vm(api, volumes=[{"name": "vmres", "path": "/in", "read_only": True}])
        ids.append(reader)
        read = exec_wait(
            api,
            reader,
            f"cat /in/v.txt; {BUSYBOX} mount -o remount,rw /in; echo x > /in/new.txt",
        )
        assert read["stdout"] == "written by vm one\n" and read["exit_code"] != 0, read
        assert exec_wait(api, writer, "ls /vol")["stdout"] == "v.txt\n"

        # Stop sends every write and ends every host process; start serves them all again.
        big = exec_wait(api, writer, "head -c 4M /dev/urandom > /data/big.bin && md5sum /data/big.bin")
        assert api.post(f"/v1/shells/{writer}/actions/stop", timeout=120).status_code == 200
        assert host_processes(server, writer) == []
        sent = get(weed, "vm1/big.bin")
        assert sent is not None and len(sent) == 4 << 20, big
        assert api.post(f"/v1/shells/{writer}/actions/start", timeout=300).status_code == 200
        again = exec_wait(api, writer, "cat /data/out.txt /vol/v.txt")
        assert again["stdout"] == "from the vm\nwritten by vm one\n", again

        # A server killed mid-run leaves the VM its shares: the next server's start-up keeps them.
        server.kill9()
        server.start()
        after = exec_wait(api, writer, "cat /vol/v.txt && echo after > /data/after.txt")
        assert after["stdout"] == "written by vm one\n", after
        sent_after = until("a write after the restart in the bucket", lambda: get(weed, "vm1/after.txt"))
        assert sent_after == b"after\n"
    except BaseException:
        print(f"server log kept: {keep_log(server, 'vmmounts')}")
        raise
    finally:
        for sid in ids:
            assert api.delete(f"/v1/shells/{sid}", timeout=120).status_code == 204
        for sid in ids:
            until("the host processes to end after delete", lambda sid=sid: host_processes(server, sid) == [])
        assert api.delete("/v1/volumes/vmres").status_code == 204
    assert get(weed, "vm1/out.txt") == b"from the vm\n"  # deleting a shell keeps the bucket's data
