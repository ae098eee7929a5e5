"""Throughput of a bucket mount and of a volume, against the raw S3 client and the local disk, in one run.

    python -m benchmarks.bench_mounts [--mib 64] [--runs 5] [--no-shells]

Starts a SeaweedFS (``weed mini``, as the tests do) and mounts a bucket of it the way a container
shell gets it (``runtime.host.bucket_fuse``: rclone with its write cache under a btrfs quota), and
makes a volume the way ``runtime.volumes`` does (a btrfs subvolume with a quota, in a scratch
loop-mounted pool). Each run writes a file of ``--mib`` MiB of random bytes and reads it back:
- bucket mount: write through FUSE until the bytes are in the bucket (flushed), then a cold read
  (a fresh mount, so nothing comes from its cache);
- raw S3: ``objects.store.S3Objects`` put and get of the same file;
- volume: write + fsync, read after dropping the page cache;
- local disk: the same on a plain file under /var/tmp.
Then, unless ``--no-shells``, the same from inside shells of a real server (``tests/e2e/harness``): a
container shell and a microvm shell, each with the bucket mounted and a volume attached (a microvm
gets both by virtio-fs), each copying the file from its own /tmp and reading it back: a volume write
until ``sync`` returns, a read after the caches are dropped (the host's, and the guest's in a VM); a
bucket write until the object is whole in the bucket, a cold read of an object put through S3 (never
in the mount's cache). A microvm is skipped, with the reason, on a host without the class.
Medians in MiB/s and the ratio to the local disk. Needs root (btrfs, FUSE, drop_caches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from tests.e2e.harness import running_server
from tests.support import s3

from shells.domain.limits import MOUNT_CACHE_BYTES
from shells.domain.mounts import BucketCredentials, BucketMount
from shells.objects.store import S3Location, S3Objects
from shells.runtime.host import btrfs_quota, bucket_fuse
from shells.runtime.host.btrfs import BtrfsPool
from shells.runtime.microvm.backend import MicrovmBackend
from shells.runtime.volumes import PoolVolumes
from shells.sdk import BucketMount as Mount
from shells.sdk import Shell, VolumeAttach

BUCKET = "bench"
CHUNK = 1 << 20
T = TypeVar("T")


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        for i in range(0, len(data), CHUNK):
            f.write(data[i : i + CHUNK])
        f.flush()
        os.fsync(f.fileno())


def read_file(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            n += len(chunk)
    return n


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-shells", action="store_true", help="only the host-side paths")
    args = ap.parse_args()
    data = os.urandom(args.mib << 20)
    top = Path(tempfile.mkdtemp(prefix="shells-bench-mounts-", dir="/var/tmp"))
    pool = BtrfsPool(top / "pool", top / "pool.img", size_bytes=4 << 30)
    pool.ensure_mounted()
    btrfs_quota.enable_simple_quota(pool.mount_dir)
    results: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        results.setdefault(name, []).append(args.mib / seconds)

    try:
        with s3.s3_server() as weed:
            where = S3Location.parse(weed.url(BUCKET, s3.USER))
            mount = BucketMount(BUCKET, weed.endpoint, "", "/bucket", False, BucketCredentials(*s3.USER))
            volumes = PoolVolumes(pool)
            asyncio.run(_setup(where, volumes))
            source = top / "source.bin"
            source.write_bytes(data)
            for i in range(args.runs):
                # local disk
                local = top / f"local-{i}.bin"
                record("local disk write", timed(lambda: write_file(local, data)))  # noqa: B023
                drop_caches()
                record("local disk read", timed(lambda: read_file(local)))  # noqa: B023
                local.unlink()
                # volume
                vol = volumes.source("vol") / f"v-{i}.bin"
                record("volume write", timed(lambda: write_file(vol, data)))  # noqa: B023
                drop_caches()
                record("volume read", timed(lambda: read_file(vol)))  # noqa: B023
                vol.unlink()
                # raw S3
                key, got = f"raw-{i}.bin", top / "got.bin"
                record("raw S3 put", asyncio.run(_with_bucket(where, lambda o: o.put(key, source)))[1])  # noqa: B023
                record("raw S3 get", asyncio.run(_with_bucket(where, lambda o: o.get(key, got)))[1])  # noqa: B023
                # bucket mount
                cache, mnt = pool.mount_dir / f"cache-{i}", top / f"mnt-{i}"
                pool.create_subvolume(cache)
                btrfs_quota.limit_subvolume(cache, MOUNT_CACHE_BYTES)
                bucket_fuse.mount(mount, mnt, cache, 0)
                try:
                    name = mnt / f"m-{i}.bin"
                    record(
                        "bucket mount write",
                        timed(lambda: (write_file(name, data), bucket_fuse.flush(cache))),  # noqa: B023
                    )
                    sent, _ = asyncio.run(_with_bucket(where, lambda o: o.head(name.name)))  # noqa: B023
                    assert sent is not None and sent.size == len(data), (
                        "flush returned before the upload ended"
                    )
                finally:
                    bucket_fuse.unmount(mnt, cache)
                    pool.delete_subvolume(cache)
                cache2 = pool.mount_dir / f"cache-r{i}"
                pool.create_subvolume(cache2)
                bucket_fuse.mount(mount, mnt, cache2, 0)
                try:
                    record("bucket mount read", timed(lambda: read_file(mnt / f"m-{i}.bin")))  # noqa: B023
                finally:
                    bucket_fuse.unmount(mnt, cache2)
                    pool.delete_subvolume(cache2)
            if not args.no_shells:
                in_shells(weed, where, top, args.mib, args.runs, record)
    finally:
        pool.unmount()
        shutil.rmtree(top, ignore_errors=True)
    print(f"{args.mib} MiB file, runs: {args.runs}")
    print(f"{'path':<32} {'median MiB/s':>13}  vs local disk")
    for name, values in results.items():
        kind = name.rsplit(" ", 1)[1]
        base = statistics.median(results[f"local disk {'write' if kind in ('write', 'put') else 'read'}"])
        med = statistics.median(values)
        print(f"{name:<32} {med:>13.1f}  {med / base:>6.2f}x")


def in_shells(
    weed: s3.S3Server, where: S3Location, top: Path, mib: int, runs: int, record: Callable[[str, float], None]
) -> None:
    """The file written and read inside a container shell and a microvm shell of a real server,
    through the bucket mount and the volume each gets (the raw S3 run's objects are the cold reads)."""
    runtimes = ["container"]
    why = MicrovmBackend.available()
    if why is None:
        runtimes.append("microvm")
    else:
        print(f"microvm skipped: {why}")
    with running_server(top / "server", warm_pool=0, env={"SHELLS_MOUNT_ENDPOINTS_LOCAL": "1"}) as server:
        client = server.client()
        for runtime in runtimes:
            client.volumes.create(f"bench-{runtime}", 2)
            shell = client.create(
                "python",
                runtime=runtime,
                mounts=[Mount(BUCKET, weed.endpoint, "/bucket", *s3.USER)],
                volumes=[VolumeAttach(f"bench-{runtime}", "/vol")],
            )
            try:
                _inside(shell, f"head -c {mib}M /dev/urandom > /tmp/src.bin")
                for i in range(runs):
                    record(
                        f"{runtime}: volume write",
                        _inside(shell, f"cp /tmp/src.bin /vol/f{i}.bin && sync /vol/f{i}.bin"),
                    )
                    _drop_caches(shell, runtime)
                    record(f"{runtime}: volume read", _inside(shell, f"cat /vol/f{i}.bin > /dev/null"))
                    start, key = time.perf_counter(), f"{runtime}-{i}.bin"
                    _inside(shell, f"cp /tmp/src.bin /bucket/{key}")
                    _until_whole(where, key, mib << 20)
                    record(f"{runtime}: bucket mount write", time.perf_counter() - start)
                    _drop_caches(shell, runtime)
                    record(
                        f"{runtime}: bucket mount read",
                        _inside(shell, f"cat /bucket/raw-{i}.bin > /dev/null"),
                    )
            finally:
                shell.kill()
                client.volumes.delete(f"bench-{runtime}")


def _until_whole(where: S3Location, key: str, size: int) -> None:
    """Wait until object ``key`` is in the bucket with all its ``size`` bytes."""
    while True:
        sent, _ = asyncio.run(_with_bucket(where, lambda o: o.head(key)))
        if sent is not None and sent.size >= size:
            return
        time.sleep(0.05)


def _inside(shell: Shell, command: str) -> float:
    """Seconds ``command`` took inside the shell, timed there (no exec round trip in it)."""
    done = shell.commands.run(f"s=$(date +%s%N); {command} || exit 1; e=$(date +%s%N); echo $((e - s))")
    assert done.exit_code == 0, done.stderr
    return int(done.stdout.split()[-1]) / 1e9


def _drop_caches(shell: Shell, runtime: str) -> None:
    """Cold reads: the host's page cache (a container's), and a VM's own."""
    drop_caches()
    if runtime == "microvm":
        _inside(shell, "sync; echo 3 > /proc/sys/vm/drop_caches")


async def _setup(where: S3Location, volumes: PoolVolumes) -> None:
    objects = S3Objects(where)
    try:
        await objects.create_bucket()
    finally:
        await objects.aclose()
    await volumes.create("vol", 2 << 30)


async def _with_bucket(where: S3Location, op: Callable[[S3Objects], Awaitable[T]]) -> tuple[T, float]:
    """``op`` on a fresh client of the bucket: its result and its seconds."""
    objects = S3Objects(where)
    try:
        start = time.perf_counter()
        result = await op(objects)
        return result, time.perf_counter() - start
    finally:
        await objects.aclose()


if __name__ == "__main__":
    main()
