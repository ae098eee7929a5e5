"""Host directories shared into a microvm: users' buckets and volumes (docs/storage.md).

For each share, in order (buckets, then volumes; share ``i`` is the guest's virtio-fs tag
``shells<i>``):

1. a bucket is served on the host by rclone (``host/bucket_cache.py``, credentials only in rclone's
   environment) at ``R/vmshares/<id>/bucket<i>``; a volume is its subvolume (``runtime/volumes.py``);
2. that directory is bound at ``R/vmshares/<id>/share<i>`` ``nosuid,nodev``, and ``ro`` for a
   read-only share (``idmap.locked_bind``): the host kernel refuses every write through it, opens
   no device node and honours no set-id bit, whatever the guest asks;
3. a virtiofsd (QEMU 7.2's) serves exactly that bind on a socket in the VM's socket directory, in
   its own mount, pid and network namespaces pivoted into it, without CAP_MKNOD;
4. QEMU's ``vhost-user-fs-pci`` device connects to it; once the guest is up the host mounts the tag
   at the asked path through the agent (``mount_inside``).

Why virtio-fs and not 9p: the guest kernel (Debian's cloud flavour) has no 9p. What it costs: the
guest RAM must be a shared file mapping (a VM with shares always boots on its own RAM file, never
restored copy-on-write from a pre-booted image) and QEMU 7.2 cannot migrate a vhost-user-fs device,
so such a VM cannot be paused, snapshotted while it runs, or forked (``action_not_supported``).

Nothing here ever removes a directory tree: ``R/vmshares/<id>`` holds live mounts of users' data,
so only empty directories are removed, after their unmount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...domain.errors import RuntimeFailure
from ...domain.execution import ExecSpec
from ..backend import ShellSpec
from ..host import bucket_fuse, idmap
from ..host.btrfs import BtrfsPool
from ..host.bucket_cache import BucketCaches
from .link import AgentLink, LinkedAgentClient
from .qemu import share_tag

log = logging.getLogger(__name__)

VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
READY_TIMEOUT_S = 10.0
MOUNT_TIMEOUT_S = 30.0
MOUNT_INSIDE = 'mkdir -p "$2" && exec /.shells/busybox mount -t virtiofs -o "$3" "$1" "$2"'
"""Run by the guest's root through the agent: busybox from the initramfs (any image has it)."""


@dataclass(frozen=True)
class Share:
    path: str
    """Where the guest mounts it."""
    read_only: bool


def shares_of(spec: ShellSpec) -> list[Share]:
    return [Share(b.path, b.read_only) for b in spec.buckets] + [
        Share(v.path, v.read_only) for v in spec.volumes
    ]


def available() -> str | None:
    """None if shares can work on this host, else why not."""
    return None if Path(VIRTIOFSD).exists() else f"{VIRTIOFSD} is missing (Debian package qemu-system-common)"


class Shares:
    def __init__(self, run_dir: Path, pool: BtrfsPool) -> None:
        self.root = run_dir / "vmshares"
        self.buckets = BucketCaches(pool, pool.mount_dir / "vmmountcache")

    def _dir(self, host_id: str) -> Path:
        return self.root / host_id

    def serve(self, spec: ShellSpec, sock_dir: Path) -> list[Path]:
        """Serve the shell's buckets and volumes; returns one virtiofsd socket per share. Blocking.
        On failure everything started is released."""
        host_id, where = spec.host_id, self._dir(spec.host_id)
        sources: list[tuple[Path, bool]] = []
        try:
            for i, bucket in enumerate(spec.buckets):
                mountpoint = where / f"bucket{i}"
                self.buckets.mount(host_id, i, bucket, mountpoint, 0)  # the guest's root owns the files
                sources.append((mountpoint, bucket.read_only))
            sources += [(v.source, v.read_only) for v in spec.volumes]
            sockets = []
            for i, (source, read_only) in enumerate(sources):
                bound = where / f"share{i}"
                bound.mkdir(parents=True)
                idmap.locked_bind(str(source), str(bound), read_only=read_only)
                sockets.append(self._virtiofsd(where, i, bound, sock_dir / f"fs{i}.sock"))
        except BaseException:
            self.release(host_id)
            raise
        return sockets

    @staticmethod
    def _virtiofsd(where: Path, index: int, source: Path, socket: Path) -> Path:
        socket.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                VIRTIOFSD, f"--socket-path={socket}", "-o", f"source={source}", "-o", "cache=none",
                "-o", "sandbox=namespace", "-o", "modcaps=-mknod", "-o", "log_level=err",
                "-o", "no_posix_lock", "-o", "no_flock",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        (where / f"virtiofsd{index}.pid").write_text(str(proc.pid), encoding="ascii")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeFailure(f"virtiofsd for share {index} did not start (exit {proc.poll()}).")
            time.sleep(0.01)
        return socket

    def held(self) -> list[str]:
        """The shells that have shares served now (or left from a crash)."""
        return sorted(d.name for d in self.root.iterdir()) if self.root.exists() else []

    def release(self, host_id: str) -> None:
        """End the shell's virtiofsd processes, unmount its binds and its buckets (once their writes
        reached the bucket, ``BucketCaches.unmount``). Idempotent."""
        where = self._dir(host_id)
        if not where.exists():
            return
        for pid_file in sorted(where.glob("virtiofsd*.pid")):
            _end_virtiofsd(pid_file)
        for bound in sorted(where.glob("share*")):
            idmap.unmount(str(bound), lazy=True)
            with contextlib.suppress(OSError):
                bound.rmdir()
        for index, _ in self.buckets.of(host_id):
            self.buckets.unmount(host_id, index, where / f"bucket{index}")
        for mountpoint in sorted(where.glob("bucket*")):
            bucket_fuse.release_orphan(mountpoint)  # its cache went first (a crash)
            with contextlib.suppress(OSError):
                mountpoint.rmdir()
        with contextlib.suppress(OSError):
            where.rmdir()

    def release_stray(self, running: Callable[[str], bool]) -> None:
        """Release the shares of shells whose VM is not running (a crash, a stop cut short)."""
        for host_id in self.held():
            if not running(host_id):
                self.release(host_id)

    def drop(self, host_id: str) -> None:
        """Release, and delete the bucket caches (unsent writes too: the shell is being destroyed)."""
        self.release(host_id)
        self.buckets.drop(host_id)


def _end_virtiofsd(pid_file: Path) -> None:
    """SIGKILL the virtiofsd recorded in ``pid_file`` if that pid is still it (it holds no data of
    its own: every write went through to the host directory), then forget it."""
    try:
        pid = int(pid_file.read_text(encoding="ascii"))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    if cmdline.startswith(VIRTIOFSD.encode() + b"\0") and f"/{pid_file.parent.name}/".encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)


async def mount_inside(link: AgentLink, shares: Sequence[Share]) -> None:
    """Mount share ``i`` (tag ``shells<i>``) at its path in the guest, as its root, through the agent.
    The guest may unmount or remount them later as it likes: nothing the host guarantees (what a
    share may write, what it holds) rests on these mounts."""
    client = LinkedAgentClient(link, op_timeout_s=MOUNT_TIMEOUT_S)
    for i, share in enumerate(shares):
        argv = ("/.shells/busybox", "sh", "-c", MOUNT_INSIDE, "mount", share_tag(i), share.path,
                "ro" if share.read_only else "rw")  # fmt: skip
        result = await client.run(ExecSpec(argv=argv, cwd="/", timeout_s=MOUNT_TIMEOUT_S))
        if result.exit.exit_code != 0:
            why = (result.stderr or result.stdout).decode(errors="replace").strip()[-300:]
            raise RuntimeFailure(f"mounting {share.path} in the VM failed: {why}")
