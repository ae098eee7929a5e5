"""Storage costs behind create, snapshot, reinstall_os and delete, on the real base template.

    python -m benchmarks.bench_btrfs [--runs 10]

Imports the base template (built once into the cache dir) into a scratch loop-mounted pool, then
times writable and read-only snapshots of it and their deletion, against ``cp -a`` of the same tree
(the baseline a filesystem without snapshots would pay), alternating in one process.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from shells.runtime.container.backend import BASE_TEMPLATE
from shells.runtime.host.btrfs import BtrfsPool
from shells.runtime.images import build_rootfs_tarball, import_rootfs
from shells.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="shells-bench-btrfs-", dir="/var/tmp"))
    pool = BtrfsPool(top / "pool", top / "pool.img", size_bytes=8 << 30)
    pool.ensure_mounted()
    times: dict[str, list[float]] = {
        k: [] for k in ("snapshot rw", "snapshot ro", "delete snapshot", "cp -a")
    }
    try:
        template = pool.mount_dir / "template"
        import_rootfs(pool, build_rootfs_tarball(Settings.from_env().cache_dir, BASE_TEMPLATE), template)
        for i in range(args.runs):
            for kind in ("rw", "ro"):
                dst = pool.mount_dir / f"{kind}-{i}"
                start = time.perf_counter()
                pool.snapshot(template, dst, readonly=kind == "ro")
                times[f"snapshot {kind}"].append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                pool.delete_subvolume(dst)
                times["delete snapshot"].append((time.perf_counter() - start) * 1000)
            copy = pool.mount_dir / f"copy-{i}"
            start = time.perf_counter()
            subprocess.run(["cp", "-a", f"{template}/.", str(copy)], check=True)
            times["cp -a"].append((time.perf_counter() - start) * 1000)
            shutil.rmtree(copy)
    finally:
        pool.unmount()
        shutil.rmtree(top, ignore_errors=True)
    baseline = statistics.median(times["cp -a"])
    print(f"base template, runs: {args.runs}")
    print(f"{'operation':<18} {'median ms':>10} {'max ms':>8}  vs cp -a")
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"{name:<18} {med:>10.2f} {max(values):>8.2f}  {baseline / med:.0f}x faster"
            if name != "cp -a"
            else f"{name:<18} {med:>10.2f} {max(values):>8.2f}"
        )


if __name__ == "__main__":
    main()
