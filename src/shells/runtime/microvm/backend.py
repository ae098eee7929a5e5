"""The microvm isolation class: every shell is a QEMU virtual machine with its own Linux kernel.

Templates are shared with the container class (its template store exports them as ext4 images) and
pre-booted once per template x shape: creating a shell restores that saved machine (a qcow2 overlay
per disk, the template's RAM file mapped copy-on-write), never boots one. See docs/microvm.md.

Where things live (``D`` data dir, ``C`` cache dir, ``R`` run dir):
    C/microvm/kernel, initramfs-*.cpio     boot artifacts (``artifacts.py``)
    C/microvm/templates/<key>/             pre-booted template images (``images.py``), host-wide
    D/microvm/shells/<id>/                 a shell: root.qcow2, workspace.qcow2, vm.json, console.log (capped)
                                           and, while paused (or on its own RAM file), ram and state
    D/microvm/images/<id>/                 snapshots and fork points
    D/microvm/bases/<sha256>.qcow2         disk bases fetched with snapshots (``portable.py``)
    R/microvm/<id>/                        QEMU's pid file and its QMP and agent sockets (virtiofsd's too)
    R/vmshares/<id>/                       its buckets and volumes, shared in by virtio-fs (``shares.py``)
/workspace is the second disk, so reinstall_os replaces only the root disk and wipe_state both.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeVar

import anyio

from ...domain.capabilities import SUSPENDABLE
from ...domain.errors import ActionNotSupported, AgentError, RuntimeFailure, TemplateNotFound
from ...domain.execution import ExecEvent, ExecSpec, FileChange, FileEntry, KeptProcess, WindowSize
from ...domain.isolation import PRESET_TEMPLATES, Runtime
from ...domain.network import NetworkAccess, NetworkMode
from ...domain.runtimes import VERSION_KEYS, RuntimeOffer
from ...domain.samples import ResourceUsage
from ...domain.templates import BuildProgress, TemplateMeta
from ...domain.terminal import TerminalIO, TerminalSpec
from ...settings import Settings
from ..backend import HostInventory, ShellSpec, read_tail
from ..container.backend import ContainerBackend, with_default_env
from ..faults import reached
from ..host import procstat
from . import console, portable, qemu
from .accel import probe_accel
from .artifacts import Artifacts, ensure_artifacts
from .images import (
    RETIRED,
    Image,
    copy_file,
    grow_ext4,
    overlay,
    set_aside_unused,
    set_root_owner,
    snapshot_names,
)
from .link import AgentLink, LinkedAgentClient, sync_fields
from .qemu import Machine, Qmp, VmFiles
from .ramsplit import Unsupported, split_ram
from .shares import Share, Shares, mount_inside, shares_of
from .vmnet import GUEST_IP, VmNetwork

log = logging.getLogger(__name__)
T = TypeVar("T")

ROOT_DISK_BYTES = 4 << 30
"""Size of a template's root filesystem in a VM (sparse: unused space costs nothing)."""
CONSOLE_MOVE_TIMEOUT_S = 5.0
"""How long moving the console ring into ``console.log`` may take before it is given up."""
BOOT_TIMEOUT_S = 120.0
WARM_UP = (("echo", "hi"), ("true",), ("sh", "-c", "echo hi; ls / > /dev/null"))
"""Run in a template's VM before it is saved, so every shell restored from it finds the agent's exec
path and the usual programs in its page cache (a first exec after create: 168 → 150 ms under TCG)."""
RESTORE_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 15.0
"""How long a stop waits for the guest to write its page cache to its disks (then it stops anyway)."""
QUIT_TIMEOUT_S = 5.0
CONTINUABLE = frozenset({"paused", "postmigrate", "finish-migrate"})
"""QEMU run states of a VM our own ``stop`` halted for a save (pause, snapshot, fork): its memory is
whole, so a save cut short by a crash is undone by letting it run on."""


@dataclass(frozen=True)
class Unsealed:
    """A fork point whose disks and RAM file of full size are in place while its RAM and device
    state are still being written: its children's QEMUs start meanwhile (each maps the RAM file
    privately; QEMU touches none of it before it loads a state, and a private mapping's pages not
    yet touched read the file as it is then), and load the state once ``written`` returns."""

    machine: Machine
    written: Callable[[], Awaitable[None]]


@dataclass
class VmRecord:
    """``vm.json``: how a shell's VM is put together; survives server restarts."""

    machine: dict[str, object]
    backing: str
    """The image directory its disks back onto (a template image, a snapshot, a fork point)."""
    ram: str = "own"
    """``own``: guest RAM is the shell's ``ram`` file (``share=on``; a pause saves device state only).
    ``private``: mapped copy-on-write from the backing image's RAM, so a pause must save RAM too."""
    paused: str = ""
    """``""`` not paused; ``device``: ``state`` holds device state and ``ram`` the memory;
    ``full``: ``state`` holds both (a VM whose RAM was private)."""
    shares: int = 0
    """How many host directories (buckets, volumes) are shared into it (``shares.py``): a VM with
    any cannot be saved (QEMU cannot migrate a vhost-user-fs device)."""


class MicrovmBackend:
    runtime = Runtime.MICROVM
    capabilities = SUSPENDABLE
    network_modes = frozenset(NetworkMode)
    port_address = GUEST_IP

    def __init__(self, settings: Settings, container: ContainerBackend) -> None:
        self.settings = settings
        self.container = container
        self.root = settings.data_dir / "microvm"
        self.run_dir = settings.run_dir / "microvm"
        self.templates_dir = settings.cache_dir / "microvm" / "templates"
        self._artifacts: Artifacts | None = None
        self._accel = ""
        self._links: dict[str, AgentLink] = {}
        self._template_locks: dict[str, asyncio.Lock] = {}
        self._pinned: set[str] = set()
        """Fork points being written: no shell's disks back onto them yet, but they are in use."""
        self.vmnet = VmNetwork(container.network, container.netns_dir)
        self.shares = Shares(settings.run_dir, container.pool)
        self.bases = portable.Bases(self.root / "bases")

    @staticmethod
    def available() -> str | None:
        """Why this class cannot run on this host, or None."""
        for tool in (qemu.QEMU, "qemu-img", "busybox", "lz4", "apt-get"):
            if shutil.which(tool) is None:
                return f"{tool} is missing (run scripts/install-system-deps.sh)"
        return None

    # start-up -------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        for d in (self.root / "shells", self.root / "images", self.run_dir, self.templates_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._artifacts = await anyio.to_thread.run_sync(ensure_artifacts, self.settings.cache_dir)
        self._accel = await probe_accel(self._artifacts, self.settings.cache_dir)
        await self._settle_all()

    async def _settle_all(self) -> None:
        """Bring every VM a crash caught mid-transition to a consistent state (see ``_settle``), end
        QEMUs that belong to no shell (a pre-boot or a fork point's conversion cut short), and collect
        fork points no shell uses."""
        shells = self.root / "shells"
        ids = {d.name for d in shells.iterdir()} if shells.exists() else set()
        for host_id in sorted(ids):
            await self._settle(host_id)
        for sock_dir in self.run_dir.iterdir():
            if sock_dir.name not in ids:
                await qemu.kill(VmFiles(sock_dir, sock_dir))
                shutil.rmtree(sock_dir, ignore_errors=True)
        await anyio.to_thread.run_sync(self.shares.release_stray, self._running)
        for path in portable.cut_short(self.root / "images", self.bases.dir):
            await anyio.to_thread.run_sync(_remove, path)
        await self._collect_images()

    def _running(self, host_id: str) -> bool:
        return qemu.pid_of(self._files(host_id)) is not None

    async def _settle(self, host_id: str) -> None:
        """Make one VM's host state agree with its ``vm.json``, the backend's commit point.

        - QEMU running the guest: the VM runs. If the record still says paused, a resume got past
          ``cont`` before it was recorded; the guest has run on its RAM file since, so the saved
          device state no longer matches it: the VM is adopted as running, never rolled back.
        - QEMU alive but halted: with the record paused (a resume still loading, or a pause that had
          saved but not yet ended its QEMU) the saved state is whole, so the QEMU goes and the VM
          stays paused; otherwise a save for a pause, snapshot or fork was cut short and the VM runs on.
        - No QEMU (a pid file without its process): the VM is stopped unless it is paused with its
          saved state, and files only a live or paused VM needs are removed.
        """
        files = self._files(host_id)
        try:
            record = self._record(host_id)
        except (RuntimeFailure, ValueError, TypeError):
            return  # never finished being created: reconciliation destroys it
        alive = qemu.pid_of(files) is not None
        if alive:
            status = await self._run_state(files)
            if status == "running":
                if record.paused:
                    record = replace(record, ram="own", paused="")
                    self._save_record(host_id, record)
                    await self._rewire(host_id)  # the resume may have died before wiring its tap
            elif record.paused or status not in CONTINUABLE or not await self._run_on(files):
                await qemu.kill(files)
                alive = False
        if not alive:
            shutil.rmtree(files.sock_dir, ignore_errors=True)
            if record.paused and not files.state.exists():
                record = replace(record, ram="own", paused="")
                self._save_record(host_id, record)
            if record.paused != "device":  # only a device-state pause keeps its memory in ``ram``
                files.ram.unlink(missing_ok=True)
        if not record.paused:
            files.state.unlink(missing_ok=True)  # a pause's save cut short
        files.state.with_name(f"{files.state.name}.devices").unlink(missing_ok=True)  # a resume's

    @staticmethod
    @asynccontextmanager
    async def _bounded_qmp(files: VmFiles) -> AsyncIterator[Qmp]:
        """QMP to a QEMU that may be hung: connecting and all that is done within is bounded."""
        async with asyncio.timeout(QUIT_TIMEOUT_S):
            qmp = await Qmp.connect(files.qmp, timeout_s=QUIT_TIMEOUT_S)
            try:
                yield qmp
            finally:
                await qmp.close()

    async def _rewire(self, host_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.vmnet.wire, host_id)
        except RuntimeFailure as exc:
            log.warning("could not wire the network of %s again: %s", host_id, exc.message)

    async def _run_state(self, files: VmFiles) -> str:
        """QEMU's run state (``running``, ``paused``, ``inmigrate``, …), or "" if it does not answer."""
        try:
            async with self._bounded_qmp(files) as qmp:
                info = await qmp.execute("query-status")
        except (RuntimeFailure, OSError, TimeoutError, ValueError):
            return ""
        status = info.get("status") if isinstance(info, dict) else None
        return status if isinstance(status, str) else ""

    async def _run_on(self, files: VmFiles) -> bool:
        """Cancel a save still being written and let the halted VM run again; False if QEMU refuses."""
        try:
            async with self._bounded_qmp(files) as qmp:
                await qmp.execute("migrate_cancel")
                while True:
                    info = await qmp.execute("query-migrate")
                    if not isinstance(info, dict) or info.get("status") not in ("active", "cancelling"):
                        break
                    await asyncio.sleep(0.01)
                await qmp.execute("cont")
        except (RuntimeFailure, OSError, TimeoutError, ValueError) as exc:
            log.warning("a VM halted mid-save could not run on (%s); it is stopped", exc)
            return False
        return True

    @property
    def artifacts(self) -> Artifacts:
        if self._artifacts is None:
            raise RuntimeFailure("The microvm class is not prepared.")
        return self._artifacts

    def details(self) -> dict[str, str]:
        a = self._artifacts
        return {
            "accel": self._accel or "unknown",
            "vmm": "qemu q35",
            "guest_kernel": a.kernel_release if a else "",
        }

    def offers(self) -> list[RuntimeOffer]:
        accel = self._accel or "tcg"
        offers = []
        for language, template in PRESET_TEMPLATES.items():
            meta = self.container.template_meta(template)
            version = meta.versions.get(VERSION_KEYS[language], "") if meta else ""
            notes = f"template {template} in a VM with its own kernel ({accel}); pre-booted on first use"
            offers.append(RuntimeOffer(language, True, version, notes))
        return offers

    # templates are the container class's -----------------------------------------------------------
    def templates(self) -> dict[str, str]:
        return self.container.templates()

    def template_meta(self, name: str) -> TemplateMeta | None:
        return self.container.template_meta(name)

    def list_templates(self) -> list[TemplateMeta]:
        return self.container.list_templates()

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        return await self.container.ensure_template(name, progress, allow_build=allow_build)

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        raise ActionNotSupported(
            "A microvm shell cannot be captured as a template yet; capture a container shell."
        )

    async def delete_template(self, name: str) -> None:
        await self.container.delete_template(name)

    async def export_ext4(self, name: str, dest: Path) -> None:
        await self.container.export_ext4(name, dest)

    # paths ----------------------------------------------------------------------------------------
    def _files(self, host_id: str) -> VmFiles:
        return VmFiles(self.root / "shells" / host_id, self.run_dir / host_id)

    def _record(self, host_id: str) -> VmRecord:
        path = self._files(host_id).disk_dir / "vm.json"
        try:
            return VmRecord(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RuntimeFailure("The shell's VM is not on this host.") from None

    def _save_record(self, host_id: str, record: VmRecord) -> None:
        path = self._files(host_id).disk_dir / "vm.json"
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(record)), encoding="utf-8")
        partial.replace(path)

    def _machine(self, spec: ShellSpec) -> Machine:
        return Machine(
            vcpus=max(1, int(spec.shape.vcpus)), memory_mib=spec.shape.memory_mib, accel=self._accel
        )

    # template images ------------------------------------------------------------------------------
    async def _template_image(self, template: str, machine: Machine) -> Image:
        """The pre-booted image of ``template`` on ``machine``: found, or booted and saved now."""
        meta = self.container.template_meta(template)
        if meta is None:
            raise TemplateNotFound(f"Template '{template}' is not on this host.")
        shape = f"{machine.vcpus}c{machine.memory_mib}m-{machine.accel}"
        booted = hashlib.sha256(repr(WARM_UP).encode()).hexdigest()[:4]  # what ran before the save
        key = f"{meta.content_hash[:16]}-{shape}-{machine.fingerprint(self.artifacts)}{booted}"
        owner = self._workspace_owner(template)
        if owner is not None:
            key += f"-u{owner[0]}g{owner[1]}"
        image = Image(self.templates_dir / key)
        lock = self._template_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not image.complete:
                await self._preboot(template, image, machine)
        return image

    def _workspace_owner(self, template: str) -> tuple[int, int] | None:
        """The owner of the template's saved /workspace when not root (an image's ``User``)."""
        workspace = self.container.template_bits.workspace(template)
        if workspace is None:
            return None
        st = workspace.stat()
        return None if (st.st_uid, st.st_gid) == (0, 0) else (st.st_uid, st.st_gid)

    async def _preboot(self, template: str, image: Image, machine: Machine) -> None:
        staging = image.dir.with_name(f".{image.dir.name}.{os.getpid()}-{secrets.token_hex(3)}")
        staging.mkdir(parents=True)
        host_id = f"preboot-{secrets.token_hex(4)}"
        files = VmFiles(staging, self.run_dir / host_id)
        try:
            await self.container.export_ext4(template, staging / "root.ext4")
            await anyio.to_thread.run_sync(grow_ext4, staging / "root.ext4", ROOT_DISK_BYTES)
            await anyio.to_thread.run_sync(overlay, staging / "root.ext4", files.root, "raw", None)
            owner = self._workspace_owner(template)
            if owner is None:
                await anyio.to_thread.run_sync(
                    overlay, self.artifacts.blank_disk, files.workspace, "raw", None
                )
            else:  # an image's user owns /workspace: a blank disk whose root is theirs, kept with the image
                await anyio.to_thread.run_sync(
                    copy_file, self.artifacts.blank_disk, staging / "workspace.ext4"
                )
                await anyio.to_thread.run_sync(set_root_owner, staging / "workspace.ext4", *owner)
                await anyio.to_thread.run_sync(
                    overlay, staging / "workspace.ext4", files.workspace, "raw", None
                )
            link = await self._boot(files, machine, None)
            try:
                for argv in WARM_UP:
                    await LinkedAgentClient(link).run(ExecSpec(argv=argv, timeout_s=30))
                await self._save(files, link, files.state, device_only=True)
            finally:
                await link.aclose()
                await qemu.kill(files)
            Image(staging).seal(machine)
            shutil.rmtree(files.sock_dir, ignore_errors=True)
            staging.rename(image.dir)
        except BaseException:
            await qemu.kill(files)
            shutil.rmtree(files.sock_dir, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            raise

    # booting, saving, restoring -------------------------------------------------------------------
    def _argv(
        self, files: VmFiles, machine: Machine, ram: Path, *, share: bool, shares: Sequence[Path] = ()
    ) -> list[str]:
        """``shares``: the virtiofsd sockets of its shared directories (then ``share`` must be on)."""
        return [
            *machine.args(self.artifacts, shares=bool(shares)),
            *qemu.device_args(files, ram, share=share, memory_mib=machine.memory_mib),
            *qemu.share_args(list(shares)),
        ]

    async def _launch(self, argv: list[str], host_id: str | None) -> None:
        """Start QEMU in the shell's network namespace (None: a throwaway one)."""
        await qemu.launch(argv, self.vmnet.netns(host_id) if host_id else None)

    async def _while_wiring(self, host_id: str | None, guest: Awaitable[T]) -> T:
        """Await ``guest`` (a VM just started getting ready) while its tap is wired if it belongs to a
        shell: the agent needs no network, and the wiring's processes use the other core meanwhile.
        Both must succeed."""
        if host_id is None:
            return await guest
        wiring = asyncio.ensure_future(anyio.to_thread.run_sync(self.vmnet.wire, host_id))
        try:
            return await guest
        finally:
            await wiring

    async def _boot(
        self, files: VmFiles, machine: Machine, host_id: str | None, spec: ShellSpec | None = None
    ) -> AgentLink:
        """Cold boot on the disks in ``files`` with a fresh own RAM file; returns a ready link. With
        ``spec``, its buckets and volumes are served and mounted inside before it is ready."""
        files.sock_dir.mkdir(parents=True, exist_ok=True)
        _blank_ram(files.ram, machine)
        shares: list[Share] = shares_of(spec) if spec is not None else []
        sockets: list[Path] = []
        link = AgentLink()
        try:
            if spec is not None and shares:
                sockets = await anyio.to_thread.run_sync(self.shares.serve, spec, files.sock_dir)
            await self._launch(self._argv(files, machine, files.ram, share=True, shares=sockets), host_id)
            await self._while_wiring(host_id, self._wait_booted(link, files))
            await mount_inside(link, shares)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await link.aclose()
                await qemu.kill(files)
                if spec is not None:
                    await anyio.to_thread.run_sync(self.shares.release, spec.host_id)
            raise
        return link

    async def _wait_booted(self, link: AgentLink, files: VmFiles) -> None:
        await link.attach(str(files.agent), 10, resync=False)
        await LinkedAgentClient(link).wait_ready(BOOT_TIMEOUT_S)
        await self._sync(link)

    async def _save(
        self,
        files: VmFiles,
        link: AgentLink,
        dest: Path,
        *,
        device_only: bool,
        stopped: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Stop the VM and write its state to ``dest`` (RAM too unless ``device_only``); the VM stays
        stopped (``cont`` it or kill it). The link is quiesced first and released after. ``stopped``
        runs once the VM is halted and its disks flushed (``stop`` drains and flushes every block
        device), before the state is written."""
        await link.quiesce()
        try:
            qmp = await Qmp.connect(files.qmp)
            try:
                await qmp.execute("stop")
                await console.move_to_log(qmp, files.console)
                if stopped is not None:
                    await stopped()
                capabilities = [{"capability": "x-ignore-shared", "state": device_only}]
                await qmp.execute("migrate-set-capabilities", capabilities=capabilities)
                await qmp.execute("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
                await qmp.pass_file("state", dest, write=True)
                await qmp.execute("migrate", uri="fd:state")
                await qmp.wait_migration()
            finally:
                await qmp.close()
        finally:
            link.release()

    async def _restore(
        self,
        files: VmFiles,
        machine: Machine,
        ram: Path,
        *,
        share: bool,
        state: Path,
        device_only: bool,
        host_id: str | None,
        start: bool = True,
        written: Callable[[], Awaitable[None]] | None = None,
    ) -> Qmp:
        """Start a QEMU that loads ``state``; returns its QMP connection (the VM runs if ``start``).

        A state holding RAM (not ``device_only``) is always loaded into a fresh RAM file, all zeros:
        the guest RAM's pages are written into it directly while QEMU starts (``ramsplit.py``).
        ``written``: ``state`` and ``ram`` are still being written (a fork point, ``fork``); QEMU is
        started meanwhile, and the state is loaded once this returns."""
        files.sock_dir.mkdir(parents=True, exist_ok=True)
        argv = [*self._argv(files, machine, ram, share=share), "-incoming", "defer"]
        filtering = None if device_only else asyncio.ensure_future(
            anyio.to_thread.run_sync(self._split_ram, state, ram))  # fmt: skip
        loaded = state
        try:
            await self._launch(argv, host_id)
            reached("microvm.restore.launched")
            qmp = await Qmp.connect(files.qmp)
            if written is not None:
                await written()
            if filtering is not None:
                loaded = await filtering
            try:
                capabilities = [{"capability": "x-ignore-shared", "state": device_only}]
                await qmp.execute("migrate-set-capabilities", capabilities=capabilities)
                await qmp.pass_file("state", loaded, write=False)
                await qmp.execute("migrate-incoming", uri="fd:state")
                await qmp.wait_incoming(RESTORE_TIMEOUT_S)
                if start:  # the state was saved stopped, and a restored VM keeps that run state
                    await qmp.execute("cont")
            except BaseException:
                await qmp.close()
                await qemu.kill(files)
                raise
        finally:
            if filtering is not None:
                loaded = await filtering  # done, or it would be left writing
                if loaded != state:
                    loaded.unlink(missing_ok=True)
        return qmp

    @staticmethod
    def _split_ram(state: Path, ram: Path) -> Path:
        """Write the guest RAM held in ``state`` into ``ram``; returns the rest of the state to load
        (``state`` itself if it cannot be split)."""
        rest = state.with_name(f"{state.name}.devices")
        try:
            split_ram(state, rest, ram)
        except Unsupported as exc:
            log.warning("loading %s as it is: %s", state, exc)
            rest.unlink(missing_ok=True)
            return state
        return rest

    async def _sync(self, link: AgentLink) -> None:
        """Tell the guest the time and give it fresh randomness (after every boot and restore)."""
        await LinkedAgentClient(link).sync()

    async def _start_from_image(
        self, spec: ShellSpec, image: Image, unsealed: Unsealed | None = None
    ) -> None:
        """A new VM restored from ``image``: overlays over its disks, its RAM copy-on-write.

        ``unsealed``: the image is a fork point still being written (see ``fork``)."""
        host_id = spec.host_id
        files = self._files(host_id)
        await anyio.to_thread.run_sync(self.vmnet.make_netns, host_id)
        # The namespace's ports and rules are set up while QEMU starts in it.
        attaching = asyncio.ensure_future(anyio.to_thread.run_sync(self.vmnet.attach, spec))
        try:
            machine = image.machine() if unsealed is None else unsealed.machine
            written = None if unsealed is None else unsealed.written
            await anyio.to_thread.run_sync(image.new_disk, image.root, files.root)
            await anyio.to_thread.run_sync(image.new_disk, image.workspace, files.workspace)
            if (image.dir / "console.log").exists():  # the boot this machine came from is its history too
                shutil.copyfile(image.dir / "console.log", files.console)
            shares = len(shares_of(spec))
            # A snapshot of a stopped shell has disks only, so they are booted; so are a VM's with
            # shares, whose RAM must be its own shared file (``shares.py``).
            if (written is None and not image.state.exists()) or shares:
                if written is not None:
                    await written()
                self._save_record(host_id, VmRecord(asdict(machine), str(image.dir), shares=shares))
                await attaching
                self._links[host_id] = await self._boot(files, machine, host_id, spec)
                return
            self._save_record(host_id, VmRecord(asdict(machine), str(image.dir), ram="private"))
            qmp = await self._restore(
                files,
                machine,
                image.ram,
                share=False,
                state=image.state,
                device_only=True,
                host_id=host_id,
                written=written,
            )
            await qmp.close()
        finally:
            await attaching
        # What ran in the VM when the image was made runs on in this one (its output unheard).
        await self._while_wiring(host_id, self._attach(host_id, resync=True, keep_processes=True))

    async def _attach(self, host_id: str, *, resync: bool, keep_processes: bool = False) -> AgentLink:
        """The link to a VM that runs. ``resync`` starts a fresh stream: the guest forgets the old
        one's commands, killing their processes unless ``keep_processes``; the request also sets
        the clock and seeds the RNG. Without it the stream continues and a ``sync`` follows."""
        files = self._files(host_id)
        link = self._links.get(host_id)
        if link is None:
            link = self._links[host_id] = AgentLink()
            resync = True
        try:
            if resync:
                fields = functools.partial(sync_fields, keep_processes=keep_processes)
                await link.attach(str(files.agent), RESTORE_TIMEOUT_S, resync=True, extra=fields)
            else:
                await link.attach(str(files.agent), RESTORE_TIMEOUT_S, resync=False)
                await self._sync(link)
        except BaseException:
            await self._drop_link(host_id)
            raise
        return link

    async def _drop_link(self, host_id: str) -> None:
        link = self._links.pop(host_id, None)
        if link is not None:
            await link.aclose()

    # lifecycle ------------------------------------------------------------------------------------
    async def create(self, spec: ShellSpec) -> None:
        files = self._files(spec.host_id)
        files.disk_dir.mkdir(parents=True, exist_ok=False)
        try:
            if spec.source_snapshot is not None:
                image = Image(self.root / "images" / spec.source_snapshot)
                if not image.complete:
                    raise RuntimeFailure(f"Snapshot {spec.source_snapshot} has no VM image on this host.")
            else:
                image = await self._template_image(spec.template, self._machine(spec))
            await self._start_from_image(spec, image)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.destroy(spec.host_id)
            raise

    async def start(self, spec: ShellSpec) -> None:
        """Cold boot the shell's disks (a stopped VM has no memory to restore)."""
        files = self._files(spec.host_id)
        record = self._record(spec.host_id)
        await self.stop(spec.host_id)
        machine = Machine(**record.machine)  # type: ignore[arg-type]
        shares = len(shares_of(spec))
        self._save_record(spec.host_id, replace(record, shares=shares))  # before any is served
        try:
            await anyio.to_thread.run_sync(self.vmnet.attach, spec)
            link = await self._boot(files, machine, spec.host_id, spec)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.stop(spec.host_id)
            raise
        self._links[spec.host_id] = link
        self._save_record(spec.host_id, replace(record, ram="own", paused="", shares=shares))

    async def stop(self, host_id: str) -> None:
        """End the VM with its disks holding everything the guest wrote; the disks stay, memory and
        saved state go. A paused VM is restored first: its unflushed writes (acknowledged ones too)
        live in the saved memory, which the host must not throw away unwritten."""
        files = self._files(host_id)
        try:
            record: VmRecord | None = self._record(host_id)
        except RuntimeFailure:
            record = None
        if record is not None and record.paused and qemu.pid_of(files) is None:
            try:
                await self._restore_paused(host_id, record, None)
                await self._attach(host_id, resync=True)
            except (RuntimeFailure, AgentError, OSError) as exc:
                log.warning("could not restore paused %s to flush its disks: %s", host_id, exc)
        if qemu.pid_of(files) is not None:
            await self._flush(host_id)
        await self._drop_link(host_id)
        await qemu.kill(files)
        await anyio.to_thread.run_sync(self.shares.release, host_id)  # the guest is gone: its writes are in
        await anyio.to_thread.run_sync(self.vmnet.detach, host_id)
        shutil.rmtree(files.sock_dir, ignore_errors=True)
        if record is not None:  # first: a crash now leaves a stopped VM, not a paused one without state
            self._save_record(host_id, replace(self._record(host_id), ram="own", paused=""))
        for path in (files.ram, files.state):
            path.unlink(missing_ok=True)

    async def _flush(self, host_id: str) -> None:
        """Have the guest write its page cache to its disks (bounded: a guest that will not is only
        losing its own data), then let QEMU write its own caches and exit cleanly."""
        files = self._files(host_id)
        try:
            async with asyncio.timeout(FLUSH_TIMEOUT_S):
                link = self._links.get(host_id) or await self._attach(host_id, resync=True)
                await LinkedAgentClient(link, op_timeout_s=FLUSH_TIMEOUT_S).run(
                    ExecSpec(argv=("sync",), timeout_s=FLUSH_TIMEOUT_S)
                )
        except (AgentError, RuntimeFailure, TimeoutError) as exc:
            log.warning("could not flush the disks of %s before stopping it: %s", host_id, exc)
        await self._keep_console(files)
        pid = qemu.pid_of(files)
        try:
            async with self._bounded_qmp(files) as qmp:
                await qmp.execute("quit")
        except (RuntimeFailure, OSError, TimeoutError) as exc:
            log.warning("QEMU of %s did not quit cleanly (%s); it is killed", host_id, exc)
        if pid is not None:
            await qemu.wait_gone(pid, QUIT_TIMEOUT_S)

    async def destroy(self, host_id: str) -> None:
        files = self._files(host_id)
        await self._drop_link(host_id)
        await qemu.kill(files)
        await anyio.to_thread.run_sync(self.shares.drop, host_id)
        await anyio.to_thread.run_sync(self.vmnet.detach, host_id)
        shutil.rmtree(files.sock_dir, ignore_errors=True)
        shutil.rmtree(files.disk_dir, ignore_errors=True)
        await self._collect_images()

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        """A new root disk from the template (and with ``wipe_workspace`` a new /workspace too).

        Wiping both restores the template's pre-booted machine; keeping /workspace cold-boots, as no
        saved memory matches that disk."""
        if self.container.template_meta(spec.template) is None:
            raise TemplateNotFound(
                f"Template '{spec.template}' is not on this host; it cannot be reinstalled."
            )
        record = self._record(spec.host_id)
        machine = Machine(**record.machine)  # type: ignore[arg-type]
        image = await self._template_image(spec.template, machine)
        was_running = qemu.pid_of(self._files(spec.host_id)) is not None or record.paused != ""
        await self.stop(spec.host_id)
        files = self._files(spec.host_id)
        files.root.unlink(missing_ok=True)
        await anyio.to_thread.run_sync(image.new_disk, image.root, files.root)
        if wipe_workspace:
            files.workspace.unlink(missing_ok=True)
            if was_running:
                await self._start_from_image(spec, image)
                return
            await anyio.to_thread.run_sync(image.new_disk, image.workspace, files.workspace)
        self._save_record(spec.host_id, replace(record, backing=str(image.dir), ram="own", paused=""))
        await self._collect_images()
        if was_running:
            await self.start(spec)

    # pause, resume, snapshot, fork ----------------------------------------------------------------
    def _savable(self, record: VmRecord, action: str) -> None:
        if record.shares:
            raise ActionNotSupported(
                f"A microvm shell with bucket mounts or volumes cannot be {action} while it runs: "
                "QEMU cannot save a VM with virtio-fs devices. Stop it first (its disks and mounts "
                "stay), or use a container shell."
            )

    async def pause(self, host_id: str) -> None:
        files = self._files(host_id)
        record = self._record(host_id)
        self._savable(record, "paused")
        link = self._links.get(host_id) or await self._attach(host_id, resync=True)
        device_only = record.ram == "own"
        await self._save(files, link, files.state, device_only=device_only)
        reached("microvm.pause.saved")
        self._save_record(host_id, replace(record, paused="device" if device_only else "full"))
        await qemu.kill(files)
        await link.detach()
        shutil.rmtree(files.sock_dir, ignore_errors=True)

    async def resume(self, spec: ShellSpec) -> None:
        host_id = spec.host_id
        record = self._record(host_id)
        if not record.paused:
            if qemu.pid_of(self._files(host_id)) is None:
                raise RuntimeFailure("The shell's VM is not paused.")
            # Restored by an earlier resume that failed after it (its link): only the link is missing.
            await self._attach(host_id, resync=True)
            return
        await anyio.to_thread.run_sync(self.vmnet.attach, spec)
        await self._restore_paused(host_id, record, host_id)
        await self._while_wiring(host_id, self._attach(host_id, resync=False))

    async def _restore_paused(self, host_id: str, record: VmRecord, netns_of: str | None) -> None:
        """Start a paused VM again from its saved state, in the shell's network namespace (or, with
        ``netns_of`` None, a throwaway one: to flush it, its network does not matter). Recorded as
        running once QEMU runs it; the saved state goes after that."""
        files = self._files(host_id)
        machine = Machine(**record.machine)  # type: ignore[arg-type]
        device_only = record.paused == "device"
        if not device_only:  # the RAM comes from the state; from now on it lives in an own file
            _blank_ram(files.ram, machine)
        qmp = await self._restore(
            files,
            machine,
            files.ram,
            share=True,
            state=files.state,
            device_only=device_only,
            host_id=netns_of,
        )
        await qmp.close()
        reached("microvm.paused.restored")
        self._save_record(host_id, replace(record, ram="own", paused=""))
        files.state.unlink(missing_ok=True)

    async def _freeze(self, host_id: str, image: Image, on_files: Callable[[], None] | None = None) -> None:
        """Write the shell's current memory and disks into ``image`` (the shell keeps its state: a
        running one continues, a paused one stays paused). ``on_files`` is called once the image's
        disks and its RAM file, at full size, are in place, before its RAM and device state are
        written (``Unsealed``)."""
        files = self._files(host_id)
        record = self._record(host_id)
        machine = Machine(**record.machine)  # type: ignore[arg-type]
        image.dir.mkdir(parents=True)
        running = not record.paused
        holds_ram = record.paused == "full" or (running and record.ram == "private")  # the state has RAM
        link = self._links.get(host_id)
        if running and link is None:
            link = await self._attach(host_id, resync=True)
        full = image.dir / "state.full"

        async def files_in_place() -> None:
            """The VM is halted (or paused) and its disks flushed: copy them, and its RAM file or
            an empty one its RAM will be written into."""
            await self._copy_disks(files, image)
            if holds_ram:
                _blank_ram(image.ram, machine)
            else:
                await anyio.to_thread.run_sync(copy_file, files.ram, image.ram)
            if on_files is not None:
                on_files()

        try:
            if running:
                assert link is not None
                await self._save(files, link, full if holds_ram else image.state, device_only=not holds_ram,
                                 stopped=files_in_place)  # fmt: skip
            else:
                await files_in_place()
                await anyio.to_thread.run_sync(copy_file, files.state, full if holds_ram else image.state)
            reached("microvm.freeze.saved")
        finally:
            if running:
                await self._continue(files)
        if holds_ram:
            await self._materialize(image, machine, full)
        image.seal(machine)

    async def _copy_disks(self, files: VmFiles, image: Image) -> None:
        image.dir.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(copy_file, files.root, image.root)
        await anyio.to_thread.run_sync(copy_file, files.workspace, image.workspace)
        if files.console.exists():
            shutil.copyfile(files.console, image.dir / "console.log")

    async def _continue(self, files: VmFiles) -> None:
        qmp = await Qmp.connect(files.qmp)
        try:
            await qmp.execute("cont")
        finally:
            await qmp.close()

    async def _materialize(self, image: Image, machine: Machine, full: Path) -> None:
        """Turn a state holding RAM into a RAM file plus device state, so children can map the RAM
        copy-on-write: the guest RAM is written into the image's RAM file and the rest is the device
        state (``ramsplit``, written as if saved with ``x-ignore-shared``). ``image.ram`` must hold
        all zeros, at the guest RAM's size."""
        split = functools.partial(split_ram, full, image.state, image.ram, ignore_shared=True)
        try:
            await anyio.to_thread.run_sync(split)
        except Unsupported as exc:
            log.warning("materializing %s through QEMU: %s", image.dir.name, exc)
            image.state.unlink(missing_ok=True)
            await self._materialize_in_qemu(image, machine, full)
        finally:
            full.unlink(missing_ok=True)

    async def _materialize_in_qemu(self, image: Image, machine: Machine, full: Path) -> None:
        """``_materialize`` for a stream ``ramsplit`` does not understand: load it into a stopped
        QEMU whose RAM is the image's file, save it again."""
        scratch = image.dir / "scratch"  # its disks are the image's; its console and sockets are not
        scratch.mkdir()
        files = VmFiles(scratch, self.run_dir / f"freeze-{secrets.token_hex(4)}")
        try:
            for disk in ("root.qcow2", "workspace.qcow2"):
                (scratch / disk).symlink_to(image.dir / disk)
            qmp = await self._restore(
                files,
                machine,
                image.ram,
                share=True,
                state=full,
                device_only=False,
                host_id=None,
                start=False,
            )
            try:
                ignore_shared = [{"capability": "x-ignore-shared", "state": True}]
                await qmp.execute("migrate-set-capabilities", capabilities=ignore_shared)
                await qmp.pass_file("state", image.state, write=True)
                await qmp.execute("migrate", uri="fd:state")
                await qmp.wait_migration()
            finally:
                await qmp.close()
        finally:
            await qemu.kill(files)
            shutil.rmtree(files.sock_dir, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        image = Image(self.root / "images" / snapshot_id)
        files = self._files(host_id)
        if qemu.pid_of(files) is not None:
            self._savable(self._record(host_id), "snapshotted")
        try:
            if qemu.pid_of(files) is None and not self._record(host_id).paused:
                await self._copy_disks(files, image)  # stopped: nothing but its disks to keep
                image.seal(Machine(**self._record(host_id).machine))  # type: ignore[arg-type]
                return
            await self._freeze(host_id, image)
        except BaseException:
            shutil.rmtree(image.dir, ignore_errors=True)
            raise

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        """Freeze the shell into a fork point and restore every child from it. The children's
        QEMUs start while the parent's RAM and device state are being written (``Unsealed``): QEMU
        starting, their disks and namespaces take the other core meanwhile."""
        record = self._record(host_id)
        self._savable(record, "forked")
        image = Image(self.root / "images" / f"fork-{host_id}-{secrets.token_hex(4)}")
        started: list[str] = []
        frozen = anyio.Event()
        unsealed = Unsealed(Machine(**record.machine), frozen.wait)  # type: ignore[arg-type]
        failure: BaseException | None = None
        self._pinned.add(image.dir.name)  # until the children's records name it (or it is removed)
        try:
            async with anyio.create_task_group() as group:

                def start_children() -> None:
                    for child in children:
                        self._files(child.host_id).disk_dir.mkdir(parents=True)
                        started.append(child.host_id)
                        group.start_soon(self._start_from_image, child, image, unsealed)

                try:
                    await self._freeze(host_id, image, on_files=start_children)
                    reached("microvm.fork.frozen")
                except BaseException as exc:  # raised as it is, not in a group with the children's
                    failure = exc
                    group.cancel_scope.cancel()
                else:
                    frozen.set()
            if failure is not None:
                raise failure
        except BaseException:
            with anyio.CancelScope(shield=True):
                for child_id in started:
                    await self.destroy(child_id)
                if image.dir.exists():
                    shutil.rmtree(image.dir, ignore_errors=True)
            raise
        finally:
            self._pinned.discard(image.dir.name)

    async def _collect_images(self) -> None:
        """Delete fork points (and retired snapshots) no shell's disks back onto any more.

        The choice is made and acted on without awaiting, on the event loop, as is every change to
        what uses an image (a fork pins its fork point before creating it and unpins it once its
        children's records name it; ``delete_snapshot`` rewrites records), so no image can come
        into use between the check and the move aside; only the deletion runs in a thread."""
        images = self.root / "images"
        doomed = set_aside_unused(images, self.root / "shells", self._pinned)
        disk_dirs = [d for d in images.glob("*/") if not d.name.startswith(".doomed-")]
        doomed += self.bases.unused([*disk_dirs, *(self.root / "shells").glob("*/")])
        for path in doomed:
            await anyio.to_thread.run_sync(functools.partial(_remove, path))

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        image = Image(self.root / "images" / snapshot_id)
        if not image.complete:
            raise RuntimeFailure(f"snapshot {snapshot_id} is not on this host")
        fingerprint = image.machine().fingerprint(self.artifacts)
        return await portable.export(image, dest, fingerprint, self.bases)

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        image = Image(self.root / "images" / snapshot_id)
        await portable.import_into(parts, image, self.bases, lambda m: m.fingerprint(self.artifacts))

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        raise ActionNotSupported("Templates are kept by the container class.")

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        raise ActionNotSupported("Templates are kept by the container class.")

    def workspace_dir(self, host_id: str) -> Path:
        raise ActionNotSupported(
            "A microvm's /workspace is inside its disk, which the host does not read; "
            "workspace sync is for container and wasm shells."
        )

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Shells created from the snapshot still read its disks: then it is retired (marked, left
        where their disks' headers find it), not deleted."""
        image = self.root / "images" / snapshot_id
        if image.exists():
            (image / RETIRED).touch()
            await self._collect_images()

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        files = self._files(host_id)
        await self._keep_console(files)
        return read_tail(files.console, max_bytes)

    @staticmethod
    async def _keep_console(files: VmFiles) -> None:
        """Move what the VM's QEMU holds of its console into ``console.log`` (``console.py``)."""
        if qemu.pid_of(files) is None:
            return
        with contextlib.suppress(RuntimeFailure, OSError, TimeoutError):
            async with asyncio.timeout(CONSOLE_MOVE_TIMEOUT_S):  # a hung QEMU delays nothing for long
                qmp = await Qmp.connect(files.qmp, timeout_s=1.0)
                try:
                    await console.move_to_log(qmp, files.console)
                finally:
                    await qmp.close()

    def usage(self, host_id: str) -> ResourceUsage:
        """Its QEMU process (CPU, resident memory; None while paused, when there is none) and the
        space its disk overlays take on the host."""
        files = self._files(host_id)
        pid = qemu.pid_of(files)
        return ResourceUsage(
            None if pid is None else procstat.process_cpu_seconds(pid),
            None if pid is None else procstat.process_rss_bytes(pid),
            procstat.allocated_bytes([files.root, files.workspace]),
        )

    async def inventory(self) -> HostInventory:
        running, paused, stored = set(), set(), set()
        shells = self.root / "shells"
        for disk_dir in shells.iterdir() if shells.exists() else []:
            host_id = disk_dir.name
            stored.add(host_id)
            if qemu.pid_of(self._files(host_id)) is not None:
                running.add(host_id)
            else:
                try:
                    if self._record(host_id).paused:
                        paused.add(host_id)
                except (RuntimeFailure, ValueError, TypeError):
                    continue
        snapshots = snapshot_names(self.root / "images")
        return HostInventory(running=running, paused=paused, stored=stored, snapshots=snapshots)

    async def purge(self) -> None:
        """Destroy every shell and image of this instance (the host-wide template cache stays)."""
        inv = await self.inventory()
        for host_id in sorted(inv.stored | inv.running | set(self.shares.held())):
            await self.destroy(host_id)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        """Like a container: the shell's namespace changes at once, the guest is not touched."""
        if self.vmnet.network.policy_of(host_id) is not None:
            await anyio.to_thread.run_sync(self.vmnet.network.set_policy, host_id, policy)

    # inside the shell -----------------------------------------------------------------------------
    async def _client(self, host_id: str) -> LinkedAgentClient:
        link = self._links.get(host_id)
        if link is None:
            if qemu.pid_of(self._files(host_id)) is None:
                raise RuntimeFailure("The shell's VM is not running on this host.")
            link = await self._attach(host_id, resync=True)  # found again after a server restart
        return LinkedAgentClient(link)

    async def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        client = await self._client(host_id)
        async with aclosing(client.exec(replace(spec, env=with_default_env(spec.env, spec.user)))) as events:
            async for event in events:
                yield event

    @asynccontextmanager
    async def _terminal(self, host_id: str, spec: TerminalSpec) -> AsyncIterator[TerminalIO]:
        client = await self._client(host_id)
        async with client.terminal(replace(spec, env=with_default_env(spec.env, spec.user))) as io:
            yield io

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return self._terminal(host_id, spec)

    async def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        client = await self._client(host_id)
        async with aclosing(client.read_file(path, max_bytes)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        client = await self._client(host_id)
        return await client.write_file(path, chunks, mode=mode, owner=owner, xattrs=xattrs)

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return await (await self._client(host_id)).list_dir(path, xattr_prefix)

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return await (await self._client(host_id)).stat(path, xattr_prefix)

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        await (await self._client(host_id)).remove(path, recursive=recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        await (await self._client(host_id)).mkdir(path, parents=True, owner=owner)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        return await (await self._client(host_id)).rename(source, destination)

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        await (await self._client(host_id)).signal(pid, signum)

    async def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        client = await self._client(host_id)
        async with aclosing(client.attach(pid, more)) as events:
            async for event in events:
                yield event

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return await (await self._client(host_id)).processes()

    async def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        client = await self._client(host_id)
        async with aclosing(client.watch(path, recursive)) as changes:
            async for change in changes:
                yield change


def _blank_ram(path: Path, machine: Machine) -> None:
    """A new RAM file of the machine's memory size, all zeros and sparse (any old one replaced)."""
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(machine.memory_mib * 1024 * 1024)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
