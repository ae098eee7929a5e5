"""The hidden subvolumes a crash leaves in the volumes' directory mid-pack or mid-fetch are removed
when the process that owns the pool starts again, and nothing else is (a real loop-mounted btrfs)."""

from __future__ import annotations

from shells.runtime.host.btrfs import BtrfsPool
from shells.runtime.volumes import PoolVolumes


def test_a_crashs_hidden_subvolumes_go_and_the_volumes_stay(pool: BtrfsPool) -> None:
    volumes = PoolVolumes(pool)
    volumes.root.mkdir(exist_ok=True)
    kept = volumes.source("vol_kept0001")
    pool.create_subvolume(kept)
    (kept / "data.txt").write_text("a volume's file")
    volumes.set_local_version("vol_kept0001", 3)
    fetch = volumes.root / ".vol_kept0001.fetch-0a1b2c3d"
    export = volumes.root / ".vol_kept0001.export-deadbeef"
    pool.create_subvolume(fetch)
    pool.snapshot(kept, export, readonly=True)  # a pack's frozen copy is read-only

    assert sorted(volumes.remove_leftovers()) == [export.name, fetch.name]
    assert not fetch.exists() and not export.exists()
    assert (kept / "data.txt").read_text() == "a volume's file"
    assert volumes.local_version("vol_kept0001") == 3  # its marks are not leftovers
    assert volumes.remove_leftovers() == []
    pool.delete_subvolume(kept)
