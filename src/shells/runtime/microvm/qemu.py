"""Starting QEMU for one VM, and talking QMP to it.

Every VM runs the same machine (the args must match between saving and restoring a state; only file
paths and the RAM mapping's ``share`` may differ): q35 with SeaBIOS booting the ELF ``vmlinux``
through its PVH entry, the kernel command line tuned for a fast TCG boot, guest RAM in a file
(``memory-backend-file``) so that pausing saves only the device state (``x-ignore-shared``), two
virtio disks (root, /workspace) and one virtio-serial port for the agent. QEMU daemonizes, so a VM
outlives a server restart; it is found again through its pid file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from ...domain.errors import RuntimeFailure
from . import console
from .artifacts import AGENT_PORT, Artifacts
from .vmnet import GUEST_MAC, TAP

QEMU = "qemu-system-x86_64"
CMDLINE = (
    "console=ttyS0 quiet loglevel=1 tsc=reliable no_timer_check i8042.noaux i8042.nokbd i8042.nopnp "
    "i8042.dumbkbd mitigations=off nokaslr random.trust_cpu=on cryptomgr.notests audit=0 apparmor=0 "
    "security=none ima_appraise=off lsm= 8250.nr_uarts=1 reboot=t panic=-1 raid=noautodetect "
    "initcall_blacklist=cmos_init,init_kprobe_trace,load_system_certificate_list,add_rtc_cmos"
)
HZ = 250
TCG_CMDLINE = "norandmaps init_on_alloc=0"
"""Under TCG only. ``norandmaps``: QEMU finds translated code by virtual address, so with address
space randomization every exec re-translates ld.so and libc (an ``exec true`` cost 25 ms instead of 5
in the guest). ``init_on_alloc=0``: zeroing every kernel allocation is emulated too. Neither guards
anything here: the VM is the boundary, and the tenant is already root inside it."""
TCG_CPU = "max,-erms"
"""Without ERMS the guest clears and copies pages with ``rep stosq``/``movsq`` (8 bytes an emulated
iteration) instead of ``rep stosb`` (one byte)."""


@dataclass(frozen=True)
class Machine:
    """What must be identical between saving a VM and restoring it."""

    vcpus: int
    memory_mib: int
    accel: str
    """``tcg`` or ``kvm``."""

    def args(self, artifacts: Artifacts, *, probe: bool = False, shares: bool = False) -> list[str]:
        """``shares``: boot the initramfs that loads virtio-fs (a VM with shared directories; such
        a VM is never saved, so its state need not match anything)."""
        khz = artifacts.tsc_khz
        cmdline = f"{CMDLINE} tsc_early_khz={khz} lpj={khz * 1000 // HZ}"
        if probe:
            cmdline += " shells.probe=1"
        if self.accel == "kvm":
            accel = ["-accel", "kvm", "-cpu", "host,-arch-capabilities"]
        else:
            accel = ["-accel", "tcg,thread=single,tb-size=64", "-cpu", TCG_CPU]
            cmdline += f" {TCG_CMDLINE}"
        return [
            "-M", "q35,memory-backend=mem0", *accel,
            "-smp", str(self.vcpus), "-m", f"{self.memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot",
            "-kernel", str(artifacts.vmlinux),
            "-initrd", str(artifacts.initramfs_shares if shares else artifacts.initramfs), "-append", cmdline,
        ]  # fmt: skip

    def fingerprint(self, artifacts: Artifacts) -> str:
        """Changes whenever anything a saved state depends on changes: the boot artifacts (the agent
        too), the CPU model, the kernel command line."""
        parts = [artifacts.key, *self.args(artifacts)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VmFiles:
    """Where one running VM's files are: ``disk_dir`` (persistent) and ``sock_dir`` (runtime)."""

    disk_dir: Path
    sock_dir: Path

    @property
    def root(self) -> Path:
        return self.disk_dir / "root.qcow2"

    @property
    def workspace(self) -> Path:
        return self.disk_dir / "workspace.qcow2"

    @property
    def ram(self) -> Path:
        return self.disk_dir / "ram"

    @property
    def state(self) -> Path:
        return self.disk_dir / "state"

    @property
    def console(self) -> Path:
        """What the host kept of the guest's serial console (``console.py``)."""
        return self.disk_dir / "console.log"

    @property
    def pidfile(self) -> Path:
        return self.sock_dir / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.sock_dir / "qmp.sock"

    @property
    def agent(self) -> Path:
        return self.sock_dir / "agent.sock"


def device_args(files: VmFiles, ram: Path, *, share: bool, memory_mib: int) -> list[str]:
    return [
        "-object", f"memory-backend-file,id=mem0,size={memory_mib}M,mem-path={ram},"
                   f"share={'on' if share else 'off'}",
        "-drive", f"id=root,file={files.root},format=qcow2,if=none,discard=unmap",
        "-device", "virtio-blk-pci,drive=root",
        "-drive", f"id=ws,file={files.workspace},format=qcow2,if=none,discard=unmap",
        "-device", "virtio-blk-pci,drive=ws",
        "-netdev", f"tap,id=net0,ifname={TAP},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC}",
        "-device", "virtio-serial-pci,id=vs0",
        "-chardev", f"socket,id=agent,path={files.agent},server=on,wait=off",
        "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
        "-qmp", f"unix:{files.qmp},server=on,wait=off",
        *console.chardev_args(),
        "-daemonize", "-pidfile", str(files.pidfile),
    ]  # fmt: skip


def share_args(sockets: list[Path]) -> list[str]:
    """One vhost-user-fs device per shared directory, served by the virtiofsd listening on its
    socket (``shares.py``); the guest mounts it by its tag ``shells<i>``."""
    args: list[str] = []
    for i, sock in enumerate(sockets):
        args += [
            "-chardev", f"socket,id=fs{i},path={sock}",
            "-device", f"vhost-user-fs-pci,chardev=fs{i},tag={share_tag(i)}",
        ]  # fmt: skip
    return args


def share_tag(index: int) -> str:
    return f"shells{index}"


def _run_qemu(argv: list[str], netns: Path | None) -> subprocess.CompletedProcess[bytes]:
    inside = ["nsenter", f"--net={netns}"] if netns is not None else ["unshare", "--net"]
    return subprocess.run(
        [*inside, QEMU, *argv], stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True,
        check=False,
    )  # fmt: skip


async def launch(argv: list[str], netns: Path | None = None) -> int:
    """Start QEMU in the network namespace ``netns`` (None: a throwaway one, for VMs that only boot
    or convert images). It daemonizes once ready to serve QMP; returns the VM's pid.

    A blocking run in a worker thread: under uvloop, awaiting a child that daemonizes did not return."""
    proc = await anyio.to_thread.run_sync(_run_qemu, argv, netns)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-1500:]
        raise RuntimeFailure(f"QEMU did not start: {detail}")
    pidfile = Path(argv[argv.index("-pidfile") + 1])
    return int(pidfile.read_text(encoding="utf-8").strip())


def pid_of(files: VmFiles) -> int | None:
    """The pid of the VM's QEMU if it is running."""
    try:
        pid = int(files.pidfile.read_text(encoding="utf-8").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(files.pidfile).encode() in cmdline else None


async def kill(files: VmFiles, timeout_s: float = 5.0) -> None:
    """SIGKILL the VM's QEMU (if running) and wait until it is gone."""
    pid = pid_of(files)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    await wait_gone(pid, timeout_s)


async def wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace") if Path(f"/proc/{pid}").exists() else ""
        if ") Z " in stat or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.002)


class Qmp:
    """A minimal QMP client: one command at a time, events skipped."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, path: Path, timeout_s: float = 10.0) -> Qmp:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeFailure("QEMU's control socket did not appear.") from None
                await asyncio.sleep(0.002)
        qmp = cls(reader, writer)
        await qmp._message()  # the greeting
        await qmp.execute("qmp_capabilities")
        return qmp

    async def _message(self) -> dict[str, object]:
        line = await asyncio.wait_for(self._reader.readline(), 30)
        if not line:
            raise RuntimeFailure("QEMU closed its control socket.")
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    async def execute(self, command: str, **arguments: object) -> object:
        request: dict[str, object] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._writer.write(json.dumps(request).encode() + b"\n")
        await self._writer.drain()
        while True:
            message = await self._message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                raise RuntimeFailure(f"QEMU refused {command}: {message['error']}")

    async def pass_file(self, name: str, path: Path, *, write: bool) -> None:
        """Hand QEMU an open file as fd ``name`` (for a ``fd:name`` migration URI): no ``exec:``
        helper for QEMU to fork, which with the guest's memory mapped costs milliseconds."""
        flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
        fd = os.open(path, flags | os.O_CLOEXEC, 0o640)
        try:
            await self._writer.drain()  # nothing of ours is queued: the request goes out whole, now
            request = json.dumps({"execute": "getfd", "arguments": {"fdname": name}}).encode() + b"\n"
            transport_fd = self._writer.get_extra_info("socket").fileno()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(transport_fd)) as sock:
                socket.send_fds(sock, [request], [fd])
        finally:
            os.close(fd)
        while True:
            message = await self._message()
            if "return" in message:
                return
            if "error" in message:
                raise RuntimeFailure(f"QEMU refused the file {path.name}: {message['error']}")

    async def wait_migration(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pause = _Backoff()
        while True:
            info = await self.execute("query-migrate")
            status = info.get("status") if isinstance(info, dict) else None
            if status == "completed":
                return
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeFailure(f"Saving the VM's state failed ({status}): {info}")
            await pause.sleep()

    async def wait_incoming(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pause = _Backoff()
        while True:
            info = await self.execute("query-status")
            status = info.get("status") if isinstance(info, dict) else None
            if status not in ("inmigrate", None):
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure("Restoring the VM's state did not finish.")
            await pause.sleep()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class _Backoff:
    """Sleeps between polls of QEMU: 1 ms at first, growing to ``MAX_S``. A state that holds RAM
    takes a few hundred milliseconds to write, and each poll costs both processes a QMP round
    trip (at 1 ms apart, ~60 ms of the server's CPU per fork x4); device state alone is done in
    a few polls."""

    MAX_S = 0.008

    def __init__(self) -> None:
        self.next_s = 0.001

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_s)
        self.next_s = min(self.MAX_S, self.next_s * 1.5)
