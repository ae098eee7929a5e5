"""What the object store costs a container snapshot (docs/storage.md), against a real S3 server.

    python -m benchmarks.bench_storage [--runs 3] [--workspace-mib 64]

Prepares a ``ContainerBackend`` on a data dir of its own and a SeaweedFS server (``weed mini``, as
the tests run it), makes one python:1 shell with ``--workspace-mib`` of incompressible data in
/workspace, then ``--runs`` times: takes a snapshot (the local btrfs step, the baseline), makes it
durable the way ``control.durable`` does (pack each part with zstd, then store it as a blob), deletes
it from the pool, and starts a shell from it the way a machine that lacks it does (fetch each blob,
unpack it into the pool, create). In the same run, a shell is also started from the snapshot while
it is still local: the ratio of the two starts is the price of a snapshot taken elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.support.s3 import s3_server

from shells.domain.execution import ExecSpec, collect
from shells.domain.network import NetworkAccess
from shells.domain.shapes import DEFAULT_SHAPE, get_shape
from shells.objects.store import S3Location, S3Objects, get_blob, put_blob
from shells.runtime.backend import ShellSpec
from shells.runtime.container.backend import ContainerBackend
from shells.settings import Settings

TEMPLATE = "python:1"
times: dict[str, list[float]] = defaultdict(list)


def spec(host_id: str, snapshot: str | None = None) -> ShellSpec:
    return ShellSpec(host_id, TEMPLATE, get_shape(DEFAULT_SHAPE), NetworkAccess(), source_snapshot=snapshot)


class Clock:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        times[self.name].append(time.perf_counter() - self.started)


async def run(runs: int, workspace_mib: int, data_dir: Path, objects: S3Objects) -> None:
    backend = ContainerBackend(Settings(data_dir=data_dir), say=lambda line: None)
    await backend.prepare()
    scratch = data_dir / "scratch"
    try:
        await backend.create(spec("shbenchsrc"))
        fill = f"head -c {workspace_mib}M /dev/urandom > /workspace/data.bin"
        result = await collect(backend.exec("shbenchsrc", ExecSpec(command=fill)))
        assert result.exit.exit_code == 0, result
        for i in range(runs):
            snap = f"snapbench{i}"
            with Clock("snapshot, local (btrfs)"):
                await backend.snapshot("shbenchsrc", snap)
            with Clock("start from it, local"):
                await backend.create(spec(f"shlocal{i}", snap))
            await backend.destroy(f"shlocal{i}")

            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            with Clock("made durable (pack + upload)"):
                with Clock("  pack (zstd)"):
                    files = await backend.export_snapshot(snap, scratch)
                with Clock("  upload"):
                    digests = {name: await put_blob(objects, path) for name, path in files.items()}
            size = sum(path.stat().st_size for path in files.values())
            times["stored MiB"].append(size / 2**20)
            await backend.delete_snapshot(snap)
            shutil.rmtree(scratch)
            scratch.mkdir()

            with Clock("start from it, fetched first"):
                with Clock("  download"):
                    fetched = {name: scratch / name for name in digests}
                    for name, digest in digests.items():
                        await get_blob(objects, digest, fetched[name])
                with Clock("  unpack"):
                    await backend.import_snapshot(snap, fetched)
                with Clock("  create"):
                    await backend.create(spec(f"shfetched{i}", snap))
            await backend.destroy(f"shfetched{i}")
            await backend.delete_snapshot(snap)
            for digest in digests.values():
                await objects.delete(f"blobs/sha256/{digest}")
    finally:
        await backend.destroy("shbenchsrc")
        await backend.purge()


def report(runs: int, workspace_mib: int) -> None:
    print(f"\n{runs} runs, python:1 with {workspace_mib} MiB of random data in /workspace, SeaweedFS")
    for name, values in times.items():
        unit = "" if name == "stored MiB" else " s"
        print(f"  {name:<34} median {statistics.median(values):8.2f}{unit}")
    local = statistics.median(times["start from it, local"])
    fetched = statistics.median(times["start from it, fetched first"])
    durable = statistics.median(times["made durable (pack + upload)"])
    snap = statistics.median(times["snapshot, local (btrfs)"])
    print(f"  start fetched / start local: {fetched / local:.1f}x")
    print(f"  made durable / local snapshot: {durable / snap:.0f}x")


Run = Callable[[int, int, Path, S3Objects], Awaitable[None]]


def main(run: Run = run, report: Callable[[int, int], None] = report, doc: str | None = __doc__) -> None:
    """Parse ``--runs`` and ``--workspace-mib``, then ``run`` on a fresh data dir against a bucket
    of a SeaweedFS started for it, and ``report``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workspace-mib", type=int, default=64)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="shells-bench-storage-", dir="/var/tmp"))
    try:
        with s3_server() as s3:
            objects = S3Objects(S3Location.parse(s3.url("bench")))

            async def go() -> None:
                try:
                    await objects.create_bucket()
                    await run(args.runs, args.workspace_mib, data_dir, objects)
                finally:
                    await objects.aclose()

            asyncio.run(go())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(args.runs, args.workspace_mib)


if __name__ == "__main__":
    main()
