"""The host-side pieces every microvm boots from, built once and cached under ``settings.cache_dir``.

- the guest kernel: Debian's cloud kernel, downloaded as a ``.deb`` with ``apt-get download`` (never
  installed on the host) and unpacked; its LZ4-compressed bzImage is turned into the ELF ``vmlinux``,
  which QEMU boots through the PVH entry (about 0.5 s faster under TCG than decompressing a bzImage);
- the virtio modules the kernel needs (they are modules in that kernel, not built in);
- a small initramfs written here as a newc cpio: static busybox, the modules, ``init`` (below) and the
  guest agent package, which ``init`` copies onto a tmpfs at ``/.shells`` of the root disk;
- a second one for VMs with shared directories (bucket mounts, volumes: ``shares.py``): the same plus
  the virtio-fs modules, which its ``init`` loads, and busybox kept at ``/.shells/busybox`` for the
  host to mount the shares with. A separate file, so every other VM's boot (and so every pre-booted
  template image, keyed by the initramfs) is unchanged by it;
- the host's TSC rate, which the guest kernel must be told (``tsc_early_khz``): under TCG it cannot
  calibrate against any timer and hangs otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import shells.guest

from ...domain.errors import RuntimeFailure
from . import cpio
from .vmnet import GUEST_SETUP

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
MODULES = (
    "kernel/drivers/virtio/virtio_ring.ko",  # before virtio.ko: it exports virtio_break_device's users
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
)
SHARE_MODULES = ("kernel/fs/fuse/fuse.ko", "kernel/fs/fuse/virtiofs.ko")
"""virtio-fs (FUSE over virtio): only in the initramfs of VMs with shares. Debian's cloud kernel has
no 9p at all, so virtio-fs is the way a host directory reaches the guest."""
AGENT_PORT = "shells.agent"
"""The virtio-serial port name the agent serves on."""

INIT = r"""#!/bin/busybox sh
# PID 1 of the initramfs: load the virtio drivers, mount the root disk (vda) and /workspace (vdb),
# put the agent on a tmpfs at /.shells and hand over to it as the real PID 1.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         virtio_blk virtio_console; do
  insmod /modules/$m.ko
done
case " $(cat /proc/cmdline) " in
  *" shells.probe=1 "*) echo shells-probe-ok > /dev/ttyS0; poweroff -f ;;
esac
for m in failover net_failover virtio_net; do insmod /modules/$m.ko; done
wait_for() { n=0; while [ ! -e "$1" ] && [ $n -lt 2000 ]; do usleep 2000; n=$((n+1)); done; }
wait_for /dev/vda
# noinit_itable: no kernel thread zeroing a fresh filesystem's inode tables, again after every restore
mount -t ext4 -o noatime,noinit_itable /dev/vda /newroot ||
  { echo "shells-init: cannot mount the root disk"; poweroff -f; }
mkdir -p /newroot/workspace /newroot/.shells /newroot/dev /newroot/proc /newroot/sys /newroot/tmp /newroot/run
wait_for /dev/vdb
mount -t ext4 -o noatime,noinit_itable /dev/vdb /newroot/workspace
for q in /sys/block/vd*/queue/scheduler; do echo none > "$q"; done  # the host's disk queues decide
mount -t tmpfs -o mode=0755,size=16m tmpfs /newroot/.shells
cp -r /guest /newroot/.shells/guest
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = "@PORT@" ] && port=/dev/${p##*/}
done
wait_for "$port"
wait_for /sys/class/net/eth0
@NET@
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
hostname shell
ip link set lo up  # the guest's own loopback; what leaves eth0 is the shell's netns's business
agent="import sys; sys.path.insert(0, '/.shells'); from guest.agent import main; sys.exit(main())"
if [ -x /newroot/.shells-agent/bin/python3 ]; then  # an image without Python: the host's runtime
  for l in /newroot/.shells-agent/lib/ld-*.so*; do loader=${l#/newroot}; done
  exec switch_root /newroot "$loader" --inhibit-cache --library-path /.shells-agent/lib \
    /.shells-agent/bin/python3 -I -S -c "$agent" --serial "$port"
fi
exec switch_root /newroot /usr/bin/python3 -E -s -c "$agent" --serial "$port"
"""
SHARES_ANCHOR = "cp -r /guest /newroot/.shells/guest\n"
SHARES_SETUP = """insmod /modules/fuse.ko
insmod /modules/virtiofs.ko
cp /bin/busybox /newroot/.shells/busybox  # the host mounts the shares with it (any image)
"""
"""Inserted after ``SHARES_ANCHOR`` in the init of the initramfs for VMs with shares."""


@dataclass(frozen=True)
class Artifacts:
    vmlinux: Path
    initramfs: Path
    kernel_release: str
    tsc_khz: int
    blank_disk: Path
    """An empty ext4 image (sparse) a fresh /workspace starts from when its template saved none."""
    initramfs_shares: Path
    """The initramfs of a VM with shared directories (virtio-fs modules loaded)."""

    @property
    def key(self) -> str:
        """Changes whenever anything a booted guest's memory depends on changes (the agent too)."""
        digest = hashlib.sha256()
        for part in (self.kernel_release, str(self.tsc_khz), self.initramfs.name, self.blank_disk.name):
            digest.update(part.encode() + b"\0")
        return digest.hexdigest()[:16]


def _run(what: str, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(argv, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stderr or b"").decode(errors="replace").strip()[-1500:]
        raise RuntimeFailure(f"{what} failed: {tail}")
    return proc  # type: ignore[no-any-return]


def kernel_package() -> str:
    """The versioned package the cloud kernel meta-package points at (needs ``apt-get update`` done)."""
    out = _run("apt-cache depends", ["apt-cache", "depends", KERNEL_META_PACKAGE]).stdout.decode()
    found = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)", out)
    if found is None:
        raise RuntimeFailure(
            f"apt knows no {KERNEL_META_PACKAGE}; run apt-get update "
            "(the microvm class needs Debian's kernel)."
        )
    return found.group(1)


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside an LZ4-compressed bzImage."""
    at = bzimage.find(LZ4_LEGACY_MAGIC)
    if at < 0:
        raise RuntimeFailure("The kernel image is not LZ4-compressed; cannot extract vmlinux.")
    proc = subprocess.run(["lz4", "-dc"], input=bzimage[at:], capture_output=True, check=False)
    if not proc.stdout.startswith(b"\x7fELF"):  # lz4 complains about the bytes after the payload
        raise RuntimeFailure(f"Extracting vmlinux failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def host_tsc_khz() -> int:
    """The host TSC rate in kHz, which a TCG guest's TSC runs at."""
    log = subprocess.run(["dmesg"], capture_output=True, check=False).stdout.decode(errors="replace")
    for pattern in (r"tsc: Refined TSC clocksource calibration: ([\d.]+) MHz", r"tsc: Detected ([\d.]+) MHz"):
        found = re.search(pattern, log)
        if found:
            return round(float(found.group(1)) * 1000)
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        found = re.search(r"cpu MHz\s*:\s*([\d.]+)", f.read())
    if found is None:
        raise RuntimeFailure("Cannot tell the host's TSC rate (no dmesg line, no cpu MHz).")
    return round(float(found.group(1)) * 1000)


def _install_kernel(dest: Path) -> str:
    """Download and unpack the kernel into ``dest`` (vmlinux, modules/, release); returns the release."""
    package = kernel_package()
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # apt's download user must be able to write here
        _run(f"apt-get download {package}", ["apt-get", "download", "-q", package], cwd=work)
        deb = next(work.glob("*.deb"))
        _run("unpacking the kernel package", ["dpkg-deb", "-x", str(deb), str(work / "x")])
        bzimage = next((work / "x" / "boot").glob("vmlinuz-*"))
        release = bzimage.name.removeprefix("vmlinuz-")
        staging = work / "out"
        (staging / "modules").mkdir(parents=True)
        (staging / "vmlinux").write_bytes(extract_vmlinux(bzimage.read_bytes()))
        for rel in MODULES:
            src = work / "x" / "lib" / "modules" / release / rel
            shutil.copyfile(src, staging / "modules" / src.name)
        _copy_share_modules(work / "x" / "lib" / "modules" / release, staging)
        (staging / "release").write_text(release, encoding="utf-8")
        staging.rename(dest)
    return release


def _copy_share_modules(modules: Path, kernel_dir: Path) -> None:
    """Put the virtio-fs modules into ``kernel_dir/share-modules`` (whole or not at all)."""
    partial = kernel_dir / f".share-modules.{os.getpid()}"
    partial.mkdir()
    for rel in SHARE_MODULES:
        shutil.copyfile(modules / rel, partial / Path(rel).name)
    partial.rename(kernel_dir / "share-modules")


def _add_share_modules(kernel_dir: Path, release: str) -> None:
    """Fetch the virtio-fs modules of ``release`` for a kernel cached before they were needed."""
    with tempfile.TemporaryDirectory(dir=kernel_dir) as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        package = f"linux-image-{release}"
        _run(f"apt-get download {package}", ["apt-get", "download", "-q", package], cwd=work)
        deb = next(work.glob("*.deb"))
        _run("unpacking the kernel package", ["dpkg-deb", "-x", str(deb), str(work / "x")])
        try:
            _copy_share_modules(work / "x" / "lib" / "modules" / release, kernel_dir)
        except OSError:
            if not (kernel_dir / "share-modules").exists():  # not another process winning the race
                raise


def _initramfs(modules: Path, share_modules: Path | None = None) -> bytes:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeFailure("busybox is missing; run scripts/install-system-deps.sh (busybox-static).")
    entries = [cpio.directory(d) for d in ("bin", "dev", "proc", "sys", "newroot", "modules", "guest")]
    entries.append(cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755))
    init = INIT.replace("@PORT@", AGENT_PORT).replace("@NET@", GUEST_SETUP)
    if share_modules is not None:
        init = init.replace(SHARES_ANCHOR, SHARES_ANCHOR + SHARES_SETUP)
    entries.append(cpio.file("init", init.encode(), 0o755))
    kos = [*modules.iterdir(), *(share_modules.iterdir() if share_modules is not None else ())]
    for ko in sorted(kos, key=lambda ko: ko.name):
        entries.append(cpio.file(f"modules/{ko.name}", ko.read_bytes()))
    guest = Path(shells.guest.__file__).resolve().parent
    for source in sorted(guest.glob("*.py")):
        entries.append(cpio.file(f"guest/{source.name}", source.read_bytes()))
    return cpio.newc(entries)


def _blank_disk(path: Path, size: str) -> None:
    """An empty ext4 image, without even ``lost+found`` (a fresh /workspace lists nothing)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    _run("making a blank ext4 image", ["mkfs.ext4", "-q", "-F", "-L", "shells-ws", "-E", "root_owner=0:0",
                                       str(partial), size])  # fmt: skip
    _run("emptying the blank ext4 image", ["debugfs", "-w", "-R", "rmdir lost+found", str(partial)])
    partial.rename(path)


def ensure_artifacts(cache_dir: Path) -> Artifacts:
    """Build (first time) or find the kernel, modules and initramfs. Blocking; safe to race."""
    root = cache_dir / "microvm"
    root.mkdir(parents=True, exist_ok=True)
    kernel_dir = root / "kernel"
    if not (kernel_dir / "release").exists():
        try:
            _install_kernel(kernel_dir)
        except OSError:
            if not (kernel_dir / "release").exists():  # not someone else's rename winning the race
                raise
    release = (kernel_dir / "release").read_text(encoding="utf-8").strip()
    if not (kernel_dir / "share-modules").exists():
        _add_share_modules(kernel_dir, release)
    initramfs = _cached_initramfs(root, _initramfs(kernel_dir / "modules"))
    initramfs_shares = _cached_initramfs(
        root, _initramfs(kernel_dir / "modules", kernel_dir / "share-modules")
    )
    blank = root / "blank-workspace-8g-v2.ext4"
    if not blank.exists():
        _blank_disk(blank, "8G")
    tsc_file = root / "tsc_khz"
    if not tsc_file.exists():
        tsc_file.write_text(str(host_tsc_khz()), encoding="utf-8")
    return Artifacts(
        vmlinux=kernel_dir / "vmlinux",
        initramfs=initramfs,
        kernel_release=release,
        tsc_khz=int(tsc_file.read_text(encoding="utf-8")),
        blank_disk=blank,
        initramfs_shares=initramfs_shares,
    )


def _cached_initramfs(root: Path, image: bytes) -> Path:
    """``image`` as ``root/initramfs-<digest>.cpio``, written once."""
    initramfs = root / f"initramfs-{hashlib.sha256(image).hexdigest()[:16]}.cpio"
    if not initramfs.exists():
        partial = initramfs.with_name(f".{initramfs.name}.{os.getpid()}")
        partial.write_bytes(image)
        partial.rename(initramfs)
    return initramfs
