"""A microvm snapshot outlives its machine (docs/storage.md, "microvm snapshots"): instance A
snapshots a running VM, the snapshot becomes durable in a real S3 server (SeaweedFS), A stops and
its data dir is purged; instance B, sharing only the record and the object store, with an empty
pool, creates a VM from it: the files are there, and so is a process that ran in A's VM, with its
memory (it answers a signal with a value it only ever held in RAM). Deleting the snapshot and the
VM then empties the bucket and B's fetched disk bases."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell
from tests.support.s3 import S3Server

from .harness import ServerProcess, serving
from .test_durable_snapshots import _blobs, _make_bucket, hand_over, wait_durable

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

KEEPER = (
    "import os, signal, time\n"
    "token = os.urandom(8).hex()\n"  # only ever in this process's memory (and the file below)
    "open('/workspace/keeper.pid', 'w').write(str(os.getpid()))\n"
    "open('/workspace/token', 'w').write(token)\n"
    "signal.signal(signal.SIGUSR1, lambda *_: open('/workspace/echo', 'w').write(token))\n"
    "while True: time.sleep(1)\n"
)


def sh(shell: Shell, script: str) -> str:
    out = shell.commands.run(script)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout)


def test_a_microvm_snapshot_starts_a_vm_with_its_memory_on_another_instance(
    s3: S3Server, data_root: Path
) -> None:
    url = s3.url("shells-durable-vm", prefix="instance")
    asyncio.run(_make_bucket(url))
    env = {"SHELLS_OBJECT_STORE": url}
    a = ServerProcess(data_root / "durable-vm-a", warm_pool=0, env=env)
    b = ServerProcess(data_root / "durable-vm-b", warm_pool=0, env=env)
    with serving(a, "durable-vm-a"), a.client() as client:
        vm = client.create("python", runtime="microvm", idle_timeout_s=0)
        vm.files.write("/workspace/kept.txt", b"made on a")
        vm.files.write("/workspace/keeper.py", KEEPER.encode())
        sh(vm, "echo rootfs-too > /root/kept; (python3 /workspace/keeper.py > /dev/null 2>&1 &)")
        deadline = time.monotonic() + 30
        while not (token := vm.files.read("/workspace/token") if _exists(vm) else b""):
            assert time.monotonic() < deadline, "the keeper process did not start"
            time.sleep(0.2)
        snap = vm.snapshot()
        assert not snap.durable
        wait_durable(client, vm.id, a)
        hand_over(a, b)
    assert not (a.data_dir / "microvm").exists(), "a's VM images outlived its purge"
    # both disks' overlays and flattened bases, the RAM, the device state, the machine
    assert len(asyncio.run(_blobs(url))) == 7

    with serving(b, "durable-vm-b"), b.client() as client:
        copy = client.create("python", runtime="microvm", snapshot=snap.id, idle_timeout_s=0)
        assert copy.files.read("/workspace/kept.txt") == b"made on a"
        assert copy.files.read("/root/kept") == b"rootfs-too\n"
        sh(copy, "kill -USR1 $(cat /workspace/keeper.pid)")
        deadline = time.monotonic() + 30
        while (echo := sh(copy, "cat /workspace/echo 2>/dev/null || true").encode()) != token:
            assert time.monotonic() < deadline, f"the keeper answered {echo!r}, not {token!r}"
            time.sleep(0.2)
        bases = b.data_dir / "microvm" / "bases"
        assert len(list(bases.iterdir())) == 2  # root's and /workspace's
        client.snapshots.delete(snap.id)
        assert asyncio.run(_blobs(url)) == []
        assert copy.files.read("/workspace/kept.txt") == b"made on a"  # it reads the retired image
        copy.kill()  # its VM is reclaimed in the background, and the bases with the retired image
        deadline = time.monotonic() + 30
        while list(bases.iterdir()):
            assert time.monotonic() < deadline, f"fetched bases outlived every VM: {list(bases.iterdir())}"
            time.sleep(0.2)


def _exists(vm: Shell) -> bool:
    return sh(vm, "test -s /workspace/token && echo yes || true") == "yes\n"
