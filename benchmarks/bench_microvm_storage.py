"""What the object store costs a microvm snapshot (docs/storage.md, "microvm snapshots"), against a
real S3 server.

    python -m benchmarks.bench_microvm_storage [--runs 3] [--workspace-mib 64]

Prepares a ``MicrovmBackend`` (and the ``ContainerBackend`` it takes templates from) on a data dir
of its own and a SeaweedFS server (``weed mini``, as the tests run it), restores one python:1 VM
from its pre-booted template image (host-wide cache; booted once if missing, not timed) and writes
``--workspace-mib`` of incompressible data in /workspace, then ``--runs`` times: takes a snapshot
of the running VM (memory and disks: the local step), starts a VM from it while it is local (the
baseline), makes it durable the way ``control.durable`` does (``export_snapshot``: flatten each
disk's base, compress every part, then store each as a blob; the first run sends the bases, later
ones find them stored already), deletes it locally, and starts a VM from it the way a machine that
lacks it does (fetch each blob, ``import_snapshot``, create). The fetched bases are dropped too,
so every fetched start pays for them.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path

from benchmarks import bench_storage
from benchmarks.bench_storage import Clock, times
from shells.domain.execution import ExecSpec, collect
from shells.domain.network import NetworkAccess
from shells.domain.shapes import DEFAULT_SHAPE, get_shape
from shells.objects.store import S3Objects, get_blob, put_blob
from shells.runtime.backend import ShellSpec
from shells.runtime.container.backend import ContainerBackend
from shells.runtime.microvm.backend import MicrovmBackend
from shells.settings import Settings

TEMPLATE = "python:1"


def spec(host_id: str, snapshot: str | None = None) -> ShellSpec:
    return ShellSpec(host_id, TEMPLATE, get_shape(DEFAULT_SHAPE), NetworkAccess(), source_snapshot=snapshot)


async def answered(vm: MicrovmBackend, host_id: str) -> None:
    result = await collect(vm.exec(host_id, ExecSpec(argv=("echo", "hi"))))
    assert result.exit.exit_code == 0, result


async def run(runs: int, workspace_mib: int, data_dir: Path, objects: S3Objects) -> None:
    settings = Settings(data_dir=data_dir)
    container = ContainerBackend(settings, say=lambda line: None)
    await container.prepare()
    vm = MicrovmBackend(settings, container)
    await vm.prepare()
    scratch = data_dir / "scratch"
    try:
        await vm.create(spec("shbenchsrc"))
        fill = f"head -c {workspace_mib}M /dev/urandom > /workspace/data.bin && sync"
        result = await collect(vm.exec("shbenchsrc", ExecSpec(command=fill)))
        assert result.exit.exit_code == 0, result
        for i in range(runs):
            snap = f"snapbench{i}"
            with Clock("snapshot, local (memory + disks)"):
                await vm.snapshot("shbenchsrc", snap)
            with Clock("start from it, local → first exec"):
                await vm.create(spec(f"shlocal{i}", snap))
                await answered(vm, f"shlocal{i}")
            await vm.destroy(f"shlocal{i}")

            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            with Clock("made durable (export + upload)"):
                with Clock("  export (flatten bases, zstd)"):
                    files = await vm.export_snapshot(snap, scratch)
                with Clock("  upload"):
                    digests = {name: await put_blob(objects, path) for name, path in files.items()}
            times["stored MiB"].append(sum(p.stat().st_size for p in files.values()) / 2**20)
            base = sum(p.stat().st_size for n, p in files.items() if n.endswith("-base"))
            times["  of which bases MiB"].append(base / 2**20)
            await vm.delete_snapshot(snap)
            shutil.rmtree(scratch)
            scratch.mkdir()

            with Clock("start from it, fetched first → first exec"):
                with Clock("  download"):
                    fetched = {name: scratch / name for name in digests}
                    for name, digest in digests.items():
                        await get_blob(objects, digest, fetched[name])
                with Clock("  import (zstd -d, rebase)"):
                    await vm.import_snapshot(snap, fetched)
                with Clock("  create → first exec"):
                    await vm.create(spec(f"shfetched{i}", snap))
                    await answered(vm, f"shfetched{i}")
            await vm.destroy(f"shfetched{i}")
            await vm.delete_snapshot(snap)  # its image and fetched bases are collected with it
        for key in await objects.list("blobs/"):
            await objects.delete(key)
    finally:
        await vm.destroy("shbenchsrc")
        await vm.purge()
        await container.purge()


def report(runs: int, workspace_mib: int) -> None:
    print(f"\n{runs} runs, a python:1 VM with {workspace_mib} MiB of random data in /workspace, SeaweedFS")
    for name, values in times.items():
        unit = "" if name.endswith("MiB") else " s"
        shown = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<42} median {statistics.median(values):8.2f}{unit}   ({shown})")
    local = statistics.median(times["start from it, local → first exec"])
    fetched = statistics.median(times["start from it, fetched first → first exec"])
    durable = statistics.median(times["made durable (export + upload)"])
    snap = statistics.median(times["snapshot, local (memory + disks)"])
    print(f"  start fetched / start local: {fetched / local:.1f}x")
    print(f"  made durable / local snapshot: {durable / snap:.1f}x")


if __name__ == "__main__":
    bench_storage.main(run, report, __doc__)
