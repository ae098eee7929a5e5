"""Container shells after a crash at the worst moment, what a shell can do to the host's disk, and
templates that do not depend on the host's CA certificates."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from shells.runtime.templates.catalog import BASE_ROOTFS, artifact, builtins
from shells.sdk import CommandResult, Shell, Shells
from shells.settings import Settings

from .harness import running_server


def test_a_server_killed_mid_snapshot_leaves_no_frozen_shell_and_no_half_snapshot(data_root: Path) -> None:
    with running_server(data_root / "frozen", warm_pool=0) as srv:
        with srv.client() as c:
            shell = c.create("bash")
            shell.files.write("/workspace/note.txt", "kept")
            complete = shell.snapshot()
        instance = Settings(data_dir=srv.data_dir).instance_id
        pool = srv.data_dir / "storage" / "pool"
        # Where a snapshot is when the server dies: the shell frozen, one subvolume copied, no record.
        freezer = Path(f"/sys/fs/cgroup/freezer/shells-{instance}/{shell.id}/freezer.state")
        freezer.write_text("FROZEN")
        half = pool / "snapshots" / "snap_halftaken000000000"
        half.mkdir()
        subprocess.run(
            ["btrfs", "-q", "subvolume", "snapshot", "-r", str(pool / "shells" / shell.id / "rootfs"),
             str(half / "rootfs")],
            check=True,
        )  # fmt: skip
        srv.kill9()
        srv.start()
        try:
            with Shells(srv.url, srv.token, timeout=20) as c:
                started = time.monotonic()
                result = c.get(shell.id).commands.run(["cat", "/workspace/note.txt"])
                elapsed = time.monotonic() - started
                assert result.stdout == "kept" and elapsed < 5, f"exec took {elapsed:.1f} s"
                assert freezer.read_text().strip() == "THAWED"
                assert [s.id for s in c.snapshots.list(shell.id)] == [complete.id]
                copy = c.create("bash", snapshot=complete.id)
                assert copy.files.read("/workspace/note.txt") == b"kept"
            assert not half.exists()
            assert sorted(p.name for p in (pool / "snapshots").iterdir()) == [complete.id]
        finally:  # a shell left frozen would hold up the server's shutdown and the purge
            if freezer.exists():
                freezer.write_text("THAWED")


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DISK_MIB = 2048  # the default shape's disk


def _pool_used(pool: Path) -> int:
    os.sync()
    st = os.statvfs(pool)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _write(shell: Shell, path: str, mib: int) -> CommandResult:
    return shell.commands.run(
        ["sh", "-c", f"dd if=/dev/zero of={path} bs=1M count={mib} conv=fsync 2>&1"], timeout=300
    )


def _assert_capped(shell: Shell) -> None:
    """Space past the disk is refused in /workspace and in the root filesystem; space within it is not."""
    for where in ("/workspace/f", "/var/f"):
        over = shell.commands.run(["fallocate", "-l", f"{DISK_MIB + 64}M", where])
        assert over.exit_code != 0 and "quota exceeded" in over.stderr, (where, over)
    within = shell.commands.run(["sh", "-c", "fallocate -l 256M /workspace/f && rm /workspace/f"])
    assert within.ok, within


def test_a_shell_cannot_fill_the_pool_past_its_disk(data_root: Path) -> None:
    with running_server(data_root / "disk", warm_pool=0) as srv:
        pool = srv.data_dir / "storage" / "pool"
        with srv.client() as c:
            shell = c.create("bash", shape="s-1vcpu-512mb")
            before = _pool_used(pool)
            full = _write(shell, "/workspace/big", DISK_MIB + 512)
            assert full.exit_code != 0 and "Disk quota exceeded" in full.stdout, full
            grown = _pool_used(pool) - before
            assert grown < (DISK_MIB + 128) << 20, f"the pool grew by {grown >> 20} MiB"
            rootfs = _write(shell, "/usr/big", 64)  # the disk is shared: nothing is left for /usr
            assert rootfs.exit_code != 0 and "Disk quota exceeded" in rootfs.stdout, rootfs
            assert shell.commands.run(["rm", "-f", "/workspace/big", "/usr/big"]).ok
            rootfs = _write(shell, "/usr/big", DISK_MIB + 512)
            assert rootfs.exit_code != 0 and "Disk quota exceeded" in rootfs.stdout, rootfs
            assert shell.commands.run(["rm", "-f", "/usr/big"]).ok
            shell.files.write("/workspace/after.txt", "still works")
            assert shell.commands.run(["cat", "/workspace/after.txt"]).stdout == "still works"

            # The agent's log is on the host too, and PID 1 is the template's python3, which the
            # shell may replace: it writes what it likes to the log before the agent starts.
            shell.files.write(
                "/usr/local/bin/python3",
                '#!/bin/sh\nhead -c 64M /dev/zero\nexec /usr/bin/python3 "$@"\n',
                mode=0o755,
            )
            shell.restart()
            logs = [*srv.data_dir.glob(f"logs/{shell.id}.log"), *pool.glob(f"shells/{shell.id}/log/*")]
            assert logs and sum(p.stat().st_size for p in logs) <= 8 << 20, logs
            assert shell.commands.run(["echo", "ok"]).stdout == "ok\n"
            assert c.info()["shapes"]["s-1vcpu-512mb"]["disk_mib"] == DISK_MIB


def test_the_disk_limit_survives_every_change_of_the_shells_subvolumes(data_root: Path) -> None:
    with running_server(data_root / "disk-kept", warm_pool=0) as srv:
        with srv.client() as c:
            shell = c.create("bash")
            _assert_capped(shell)
            copy = c.create("bash", snapshot=shell.snapshot().id)
            _assert_capped(copy)
            for change in (shell.reinstall_os, shell.wipe_state, shell.restart, shell.stop):
                change()
                if change == shell.stop:
                    shell.start()
                _assert_capped(shell)
        srv.kill9()
        srv.start()
        with srv.client() as c:
            _assert_capped(c.get(shell.id))


def _new_ca(where: Path) -> str:
    """A real self-signed CA certificate (PEM), unlike any the host has."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(where / "extra.key"), "-out", str(where / "extra.pem"), "-days", "1",
         "-subj", "/CN=shells test extra CA"],
        check=True, capture_output=True,
    )  # fmt: skip
    return (where / "extra.pem").read_text(encoding="utf-8")


def test_a_ca_added_on_the_host_makes_no_template_rebuild(data_root: Path) -> None:
    cas = data_root / "host-cas"  # the host's own CAs: a build may need them (a TLS-inspecting proxy)
    real = Path("/usr/local/share/ca-certificates")
    if real.is_dir():
        shutil.copytree(real, cas)
    else:
        cas.mkdir()
    env = {"SHELLS_HOST_CA_DIR": str(cas)}
    with running_server(data_root / "ca-first", warm_pool=0, env=env) as first, first.client() as c:
        bundle = c.create("bash").files.read(CA_BUNDLE).decode()
        assert all(p.read_text().strip() in bundle for p in cas.rglob("*.crt"))
    cache = Settings().cache_dir
    built = [cache / BASE_ROOTFS.tarball_name(), artifact(cache, builtins()["python:1"])]
    stamps = [p.stat().st_mtime_ns for p in built]

    extra = _new_ca(data_root)
    (cas / "shells-test-extra.crt").write_text(extra, encoding="utf-8")
    with running_server(data_root / "ca-second", warm_pool=0, env=env) as second:
        assert "built earlier on this host" in second.log_tail(20_000)
        with second.client() as c:
            for language in ("bash", "python"):
                bundle = c.create(language).files.read(CA_BUNDLE).decode()
                assert extra.strip() in bundle, language
    assert [p.stat().st_mtime_ns for p in built] == stamps, "a cached template was built again"
