"""Which accelerator a VM gets here, decided by a real tiny boot rather than by looking at /dev/kvm.

On some hosts ``/dev/kvm`` exists but cannot run an ordinary guest kernel (``kvm_pvm`` needs a PVM
guest kernel: QEMU starts, the firmware runs, the Debian kernel hangs silently). So the probe boots the
real kernel and initramfs in ``shells.probe=1`` mode, where init prints a marker on the serial console
and powers off: KVM if that works within a deadline, else TCG (software emulation), checked the same
way. The answer depends only on the host kernel, QEMU and the guest kernel, so it is cached under that
key; nothing but ``Machine.accel`` depends on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

from ...domain.errors import RuntimeFailure
from .artifacts import Artifacts
from .qemu import CMDLINE, HZ, QEMU

MARKER = b"shells-probe-ok"
DEADLINES_S = {"kvm": 10.0, "tcg": 60.0}


def _probe_argv(artifacts: Artifacts, accel: str) -> list[str]:
    khz = artifacts.tsc_khz
    cpu = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"] if accel == "kvm" else [
        "-accel", "tcg,thread=single", "-cpu", "max"]  # fmt: skip
    return [
        QEMU, "-M", "q35", *cpu, "-smp", "1", "-m", "256M", "-nodefaults", "-no-user-config",
        "-display", "none", "-vga", "none", "-no-reboot", "-serial", "stdio",
        "-kernel", str(artifacts.vmlinux), "-initrd", str(artifacts.initramfs),
        "-append", f"{CMDLINE} tsc_early_khz={khz} lpj={khz * 1000 // HZ} shells.probe=1",
    ]  # fmt: skip


async def boots(artifacts: Artifacts, accel: str) -> bool:
    """Whether the guest kernel reaches its init under ``accel`` before the deadline."""
    proc = await asyncio.create_subprocess_exec(
        *_probe_argv(artifacts, accel), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), DEADLINES_S[accel])
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False
    return MARKER in out


def _cache_key(artifacts: Artifacts) -> str:
    version = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False).stdout
    kvm = Path("/sys/module/kvm_pvm").exists(), Path("/dev/kvm").exists()
    parts = (os.uname().release, version, artifacts.kernel_release, artifacts.initramfs.name, str(kvm))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


async def probe_accel(artifacts: Artifacts, cache_dir: Path) -> str:
    """``kvm`` or ``tcg`` (cached per host kernel, QEMU and guest kernel); RuntimeFailure if neither."""
    cached = cache_dir / "microvm" / f"accel-{_cache_key(artifacts)}"
    if cached.exists():
        return cached.read_text(encoding="utf-8").strip()
    candidates = ["kvm", "tcg"] if os.access("/dev/kvm", os.R_OK | os.W_OK) else ["tcg"]
    for accel in candidates:
        if await boots(artifacts, accel):
            cached.write_text(accel, encoding="utf-8")
            return accel
    raise RuntimeFailure("The guest kernel boots neither with KVM nor with TCG on this host.")
