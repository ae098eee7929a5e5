"""The container isolation class: crun, a btrfs pool, idmapped mounts and a guest agent as PID 1.

Where things live (``D`` is the instance's data dir, ``P`` its btrfs pool):
    P/templates/<name:tag>/              a template: read-only ``rootfs`` (+ ``workspace``), template.json
    P/cache/<path>                       caches shared by the shells that ask for them (template builds)
    P/shells/<id>/{rootfs,workspace}     a shell's writable subvolumes
    P/shells/<id>/log/agent.log          the agent's (PID 1's) stdout and stderr, in a subvolume of its own
    P/snapshots/<snap>/{rootfs,workspace} read-only snapshots
    R/shells/<id>/                       runtime-only: bundle, idmapped mounts, the agent's socket
    R/netns/<id>                         the shell's network namespace
    R/shared/resolv/<id>                 each shell's /etc/resolv.conf, on a small tmpfs of the instance's
    R/runtime/<version>/                 the guest agent's runtime (interpreter, libraries, precompiled
                                         stdlib and agent), every shell's read-only /.shells, on a tmpfs
    R/devices/                           a tmpfs with the device nodes crun binds into shells
    R/shells/<id>/mounts/<i>             a bucket mount: the directory its rclone process serves
    R/shells/<id>/volumes/<i>            a volume attached to the shell, idmapped
    P/mountcache/<id>-<i>                a bucket mount's write cache and log (a subvolume with a quota)
``R`` is ``/run/shells/<instance>``: it vanishes on reboot together with the shells' processes, and
every directory on the way is traversable by the shells' unprivileged host uids (which crun needs
while it sets up their mounts).
The host creates each agent's listening socket at ``R/shells/<id>/agent.sock`` and passes it to the
agent as fd 3: no shell sees that directory, so none can replace the socket the host connects to,
and the path (and the agent holding the socket) survives a server restart.
Everything a shell writes to the host's disk is in its three subvolumes, which share one btrfs
quota group limited to the shape's disk (``shell_disk``).
Host-wide names carry the instance id (cgroups ``/shells-<instance>/<id>``, uid-block claims), so two
instances on one host never touch each other's objects.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path

import anyio

from ...domain.capabilities import COMMON_CAPABILITIES
from ...domain.errors import ActionNotSupported, RuntimeFailure, TemplateNotFound
from ...domain.execution import ExecEvent, ExecSpec, FileChange, FileEntry, KeptProcess, WindowSize
from ...domain.isolation import PRESET_TEMPLATES, Runtime
from ...domain.network import NetworkAccess, NetworkMode
from ...domain.runtimes import VERSION_KEYS, RuntimeOffer
from ...domain.samples import ResourceUsage
from ...domain.templates import BuildProgress, TemplateMeta
from ...domain.terminal import TerminalIO, TerminalSpec
from ...guest.protocol import SERVE_SUDO
from ...settings import Settings
from .. import agent_runtime, snapshot_files
from ..agent_client import AgentClient
from ..backend import HostInventory, ShellSpec, read_tail
from ..host import btrfs_quota, bucket_fuse, cgroups, idmap, netns, seccomp, uids
from ..host.btrfs import BtrfsPool
from ..host.bucket_cache import BucketCaches
from ..network.dataplane import HostNetwork
from ..network.inside import LOOPBACK
from ..templates.build_dns import dns_for_builds
from ..templates.catalog import BASE_ROOTFS
from ..templates.provision import BuiltinTemplates
from . import host_view
from .bundle import AGENT_DIR, AGENT_LISTEN_FD, DEFAULT_PATH, BundlePaths, build_config
from .crun import Crun
from .shell_disk import ShellDisk
from .template_bits import TemplateBits

log = logging.getLogger(__name__)

BASE_TEMPLATE = BASE_ROOTFS
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "xterm-256color"}


def with_default_env(env: dict[str, str], user: str | None) -> dict[str, str]:
    """A command's environment over the defaults; for another user than root (an image's ``User``)
    HOME is left to the agent, which takes it from the shell's /etc/passwd."""
    base = DEFAULT_ENV if user is None else {k: v for k, v in DEFAULT_ENV.items() if k != "HOME"}
    return {**base, **env}


def host_pool(settings: Settings) -> BtrfsPool:
    """The instance's btrfs pool: ``SHELLS_BTRFS_DIR`` when set, else an image file in the data dir."""
    if settings.btrfs_dir is not None:
        return BtrfsPool(mount_dir=settings.btrfs_dir)
    storage = settings.data_dir / "storage"
    return BtrfsPool(
        mount_dir=storage / "pool", image=storage / "pool.img", size_bytes=settings.pool_image_gib * 1024**3
    )


class ContainerBackend:
    runtime = Runtime.CONTAINER
    capabilities = COMMON_CAPABILITIES

    network_modes = frozenset(NetworkMode)
    port_address = LOOPBACK

    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None] | None = None,
        *,
        pool: BtrfsPool | None = None,
        network: HostNetwork | None = None,
    ) -> None:
        """``pool`` and ``network`` are the host's (``shells.node`` builds them once per machine and
        hands them to every backend); alone, the backend makes its own from ``settings``."""
        self.settings = settings
        self.say = say or _to_stderr
        """Where long start-up work (template builds) reports progress to a person."""
        self.instance = settings.instance_id
        data = settings.data_dir
        self.pool = pool or host_pool(settings)
        self.run_dir = settings.run_dir
        self.netns_dir = self.run_dir / "netns"
        self.network = network or HostNetwork(settings)
        self.legacy_logs_dir = data / "logs"
        """Where logs were before they moved into the pool: a shell made then has its log here."""
        self.crun = Crun(self.run_dir / "crun", devices=self.run_dir / "devices")
        self.cgroup_prefix = cgroups.instance_cgroup(self.instance)
        self.uid_blocks = uids.UidBlocks(self.instance)
        self._seccomp_b64 = ""
        self._details: dict[str, str] = {}
        self._shared = self.run_dir / "shared"
        self._runtime_tmpfs = self.run_dir / "runtime"
        self._runtime: agent_runtime.AgentRuntime | None = None
        self.template_bits = TemplateBits(self.pool, settings.host_ca_dir)
        self.disk = ShellDisk(self.pool)
        self._builtins = BuiltinTemplates(self, self.template_bits, settings.cache_dir)

    # paths ----------------------------------------------------------------------------------------
    @property
    def _p(self) -> Path:
        return self.pool.mount_dir

    def _cache_dir(self, path_inside: str) -> Path:
        return self._p / "cache" / path_inside.strip("/").replace("/", "_")

    def _shell_dir(self, host_id: str) -> Path:
        return self._p / "shells" / host_id

    def _snapshot_dir(self, snap_id: str) -> Path:
        return self._p / "snapshots" / snap_id

    def _runtime_dir(self, host_id: str) -> Path:
        return self.run_dir / "shells" / host_id

    @property
    def _buckets(self) -> BucketCaches:
        return BucketCaches(self.pool, self._p / "mountcache")

    def _socket(self, host_id: str) -> str:
        return str(self._runtime_dir(host_id) / "agent.sock")

    def _resolv_conf(self, host_id: str) -> Path:
        return self._shared / "resolv" / host_id

    def _cgroup(self, host_id: str) -> str:
        return f"/{self.cgroup_prefix}/{host_id}"

    # start-up -------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        cgroups.ensure_hybrid_cgroup_fix()
        await anyio.to_thread.run_sync(self.pool.ensure_mounted)
        for d in (
            self._p / "templates",
            self._p / "shells",
            self._p / "snapshots",
            self._p / "cache",
            self._p / "mountcache",
        ):
            d.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(self.template_bits.remove_leftovers)
        quota_mode = await anyio.to_thread.run_sync(btrfs_quota.enable_simple_quota, self._p)
        for d in (self.run_dir / "shells", self.netns_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.run_dir.parent, self.run_dir, self.run_dir / "shells"):
            d.chmod(0o711)
        host_view.mount_shared(self._shared)
        host_view.mount_devices(self.crun.devices)
        await anyio.to_thread.run_sync(self._install_agent_runtime)
        netns.ensure_private_mount(str(self.netns_dir))
        await anyio.to_thread.run_sync(self.network.prepare)
        self._seccomp_b64 = seccomp.cached_bpf_b64(self.settings.cache_dir)
        for block, owner in self.uid_blocks.claims_of().items():
            if not self._runtime_dir(owner).exists():  # a claim whose shell is not running: a leftover
                self.uid_blocks.release(block)
        self._thaw_leftovers()
        await anyio.to_thread.run_sync(self._release_stray_mounts)
        self._details = {
            "oci_runtime": await self.crun.version(),
            "seccomp": "precompiled BPF",
            "disk_quota": f"btrfs {quota_mode}",
        }
        async with dns_for_builds(self.network):  # the server's own resolver is not running yet
            await self._builtins.prepare_default(self.say)

    def _thaw_leftovers(self) -> None:
        """Thaw every shell a killed server left frozen: a container shell is frozen only in the middle
        of a snapshot or a capture, which this start-up is not (the half-taken snapshot is an orphan
        reconciliation removes). Adopted frozen, it would answer nothing until a restart."""
        for host_id in sorted(cgroups.instance_cgroup_children(self.cgroup_prefix)):
            if cgroups.thaw_cgroup(self._cgroup(host_id)):
                log.warning("thawed shell %s, left frozen by a server that stopped mid-snapshot", host_id)

    def _release_stray_mounts(self, everything: bool = False) -> None:
        """Unmount the bucket mounts of shells that are not running (a crash between their mount and
        their container's start, or a stop that never finished), or with ``everything`` (purge) all
        of them, caches and all."""
        for host_id, index, cache in self._buckets.every():
            if everything or not (self._runtime_dir(host_id) / "bundle").exists():
                self._buckets.unmount(host_id, index, self._runtime_dir(host_id) / "mounts" / str(index))
            if everything and self.pool.is_subvolume(cache):
                self.pool.delete_subvolume(cache)

    def details(self) -> dict[str, str]:
        return dict(self._details)

    def offers(self) -> list[RuntimeOffer]:
        """Every preset runs here: its template is ready, or it is a built-in built on first use."""
        offers = []
        for language, template in PRESET_TEMPLATES.items():
            meta = self.template_meta(template)
            if meta is None:
                notes = (
                    f"template {template} is not built yet: `shells create` builds it first (minutes, "
                    f"once per host), the API answers template_not_built until then"
                )
                offers.append(RuntimeOffer(language, True, "", notes))
            else:
                version = meta.versions.get(VERSION_KEYS[language], "")
                offers.append(RuntimeOffer(language, True, version, f"template {template}"))
        return offers

    def _install_agent_runtime(self) -> None:
        """Build the agent runtime (once per host and code version, cached) and put it on the runtime
        tmpfs, dropping the versions no running shell uses."""
        built = agent_runtime.cached(self.settings.cache_dir)
        host_view.mount_runtime(self._runtime_tmpfs)
        installed = host_view.install_runtime(self._runtime_tmpfs, built.root, self._runtime_in_use)
        self._runtime = agent_runtime.load(installed)

    def _runtime_in_use(self, version: str) -> bool:
        """Whether a running shell's bundle binds this version of the agent runtime."""
        needle = f'"{self._runtime_tmpfs / version}"'
        return any(
            needle in config.read_text(encoding="utf-8")
            for config in (self.run_dir / "shells").glob("*/bundle/config.json")
        )

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        return await self._builtins.ensure(name, progress, allow_build=allow_build)

    def templates(self) -> dict[str, str]:
        return {
            m.name: ", ".join(f"{k} {v}" for k, v in m.versions.items()) for m in self.template_bits.all()
        }

    def template_meta(self, name: str) -> TemplateMeta | None:
        return self.template_bits.meta(name)

    def list_templates(self) -> list[TemplateMeta]:
        return self.template_bits.all()

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        """Snapshot the shell's subvolumes (frozen meanwhile, so they agree) into a new template."""
        shell_dir = self._shell_dir(host_id)
        running = self._runtime_dir(host_id).exists()
        with self.template_bits.staging(meta.name) as staging:
            if running:
                await self.crun.pause(host_id)
            try:
                self.pool.snapshot(shell_dir / "rootfs", staging / "rootfs", readonly=True)
                if include_workspace:
                    self.pool.snapshot(shell_dir / "workspace", staging / "workspace", readonly=True)
            finally:
                if running:
                    await self.crun.resume(host_id)
            return await anyio.to_thread.run_sync(self.template_bits.commit, staging, meta)

    async def delete_template(self, name: str) -> None:
        await anyio.to_thread.run_sync(self.template_bits.remove, name)

    async def export_ext4(self, name: str, dest: Path) -> None:
        runtime = (await anyio.to_thread.run_sync(agent_runtime.cached, self.settings.cache_dir)).root
        await anyio.to_thread.run_sync(self.template_bits.export_ext4, name, Path(dest), runtime)

    def _fill_from_template(self, template: str, shell_dir: Path, *, workspace: bool) -> None:
        """Give a shell the template's root filesystem, and with ``workspace`` its /workspace too (the
        template's saved one, or an empty one)."""
        self.template_bits.require(template)
        self.pool.snapshot(self.template_bits.rootfs(template), shell_dir / "rootfs", readonly=False)
        if workspace:
            saved = self.template_bits.workspace(template)
            if saved is not None:
                self.pool.snapshot(saved, shell_dir / "workspace", readonly=False)
            else:
                self.pool.create_subvolume(shell_dir / "workspace")

    # lifecycle ------------------------------------------------------------------------------------
    async def create(self, spec: ShellSpec) -> None:
        shell_dir = self._shell_dir(spec.host_id)
        shell_dir.mkdir(parents=True, exist_ok=False)
        try:
            # Each snapshot commits a btrfs transaction (2-6 ms, far more on a busy disk): in a worker
            # thread, so concurrent creates and every other request are not held up behind it.
            await anyio.to_thread.run_sync(self._make_subvolumes, spec, shell_dir)
            await self.start(spec)
        except BaseException:
            await self.destroy(spec.host_id)
            raise

    def _make_subvolumes(self, spec: ShellSpec, shell_dir: Path) -> None:
        if spec.source_snapshot is not None:
            snap = self._snapshot_dir(spec.source_snapshot)
            self.pool.snapshot(snap / "rootfs", shell_dir / "rootfs", readonly=False)
            self.pool.snapshot(snap / "workspace", shell_dir / "workspace", readonly=False)
        else:
            self._fill_from_template(spec.template, shell_dir, workspace=True)

    async def start(self, spec: ShellSpec) -> None:
        host_id = spec.host_id
        if self._runtime_dir(host_id).exists():  # leftovers of a crash between start and stop
            await self.stop(host_id)
        try:
            # The host steps are blocking syscalls (~5 ms); a worker thread keeps the API responsive.
            bundle, listener = await anyio.to_thread.run_sync(self._prepare_bundle, spec)
            # Once the agent holds the socket, ours must go: a connection must fail when it dies.
            with listener:
                await self.crun.run_detached(host_id, bundle, self.disk.log(host_id), listener.fileno())
            await AgentClient(self._socket(host_id)).wait_ready(self.settings.agent_ready_timeout_s)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.stop(host_id)
            raise

    def _prepare_bundle(self, spec: ShellSpec) -> tuple[Path, socket.socket]:
        """Claim a uid block, mount rootfs and /workspace idmapped, make the netns, write config.json,
        and make the agent's listening socket (returned, for crun to pass on)."""
        host_id = spec.host_id
        rt = self._runtime_dir(host_id)
        rootfs_mnt, ws_mnt, bundle = rt / "rootfs", rt / "workspace", rt / "bundle"
        for d in (rootfs_mnt, ws_mnt, bundle):
            d.mkdir(parents=True)
        block = self.uid_blocks.claim(host_id)
        (rt / "runtime.json").write_text(json.dumps({"uid_block": block}), encoding="utf-8")
        uid_base = uids.uid_base(block)
        fd = idmap.userns_fd(uid_base)
        caches: list[tuple[str, str]] = []
        try:
            shell_dir = self._shell_dir(host_id)
            self.disk.limit(host_id, spec.shape)
            idmap.idmapped_bind(str(shell_dir / "rootfs"), str(rootfs_mnt), fd)
            idmap.idmapped_bind(str(shell_dir / "workspace"), str(ws_mnt), fd)
            for i, inside in enumerate(spec.cache_dirs):
                source, mnt = self._cache_dir(inside), rt / "cache" / str(i)
                if not source.exists():
                    self.pool.create_subvolume(source)
                btrfs_quota.limit_subvolume(source, spec.shape.disk_bytes)  # shared, so a limit of its own
                mnt.mkdir(parents=True)
                idmap.idmapped_bind(str(source), str(mnt), fd)
                caches.append((str(mnt), inside))
            mounts = self._mount_volumes(spec, rt, fd)
        finally:
            os.close(fd)
        mounts += self._mount_buckets(spec, rt, uid_base)
        ns_path = self.netns_dir / host_id
        netns.create_sealed_netns(str(ns_path))
        addresses = self.network.attach(
            host_id, str(ns_path), spec.network, spec.networks, spec.hostname, brokered=spec.brokered
        )
        resolv_conf = self._resolv_conf(host_id)  # every mode: a live change to internet needs no restart
        resolv_conf.write_text(f"nameserver {addresses.nameserver}\n", encoding="utf-8")
        config = build_config(
            paths=BundlePaths(
                rootfs=str(rootfs_mnt),
                workspace=str(ws_mnt),
                agent_runtime=str(self._agent_runtime().root),
                netns=str(ns_path),
                caches=tuple(caches),
                resolv_conf=str(resolv_conf),
                mounts=tuple(mounts),
            ),
            shape=spec.shape,
            agent_argv=self._agent_runtime().argv(AGENT_DIR, "--listen-fd", str(AGENT_LISTEN_FD), SERVE_SUDO),
            uid_base=uid_base,
            cgroup_path=self._cgroup(host_id),
            seccomp_bpf_b64=self._seccomp_b64,
        )
        (bundle / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return bundle, _listen(self._socket(host_id))

    def _mount_volumes(self, spec: ShellSpec, rt: Path, userns_fd: int) -> list[tuple[str, str, bool]]:
        """Bind each volume's host directory idmapped (read-only ones read-only on the host side)."""
        mounts = []
        for i, volume in enumerate(spec.volumes):
            mnt = rt / "volumes" / str(i)
            mnt.mkdir(parents=True)
            idmap.idmapped_bind(str(volume.source), str(mnt), userns_fd, read_only=volume.read_only)
            mounts.append((str(mnt), volume.path, volume.read_only))
        return mounts

    def _mount_buckets(self, spec: ShellSpec, rt: Path, uid_base: int) -> list[tuple[str, str, bool]]:
        """Start one FUSE process per bucket mount, its files owned by the shell's root."""
        mounts = []
        for i, bucket in enumerate(spec.buckets):
            mnt = rt / "mounts" / str(i)
            self._buckets.mount(spec.host_id, i, bucket, mnt, uid_base)
            mounts.append((str(mnt), bucket.path, bucket.read_only))
        return mounts

    def _release_mounts(self, host_id: str, rt: Path) -> None:
        """Unmount the shell's bucket mounts (ending their processes) and volumes. Idempotent."""
        for index, _ in self._buckets.of(host_id):
            self._buckets.unmount(host_id, index, rt / "mounts" / str(index))
        for mnt in sorted((rt / "mounts").iterdir()) if (rt / "mounts").exists() else []:
            bucket_fuse.release_orphan(mnt)  # its cache went first (a crash, a purge cut short)
        volumes = sorted((rt / "volumes").iterdir()) if (rt / "volumes").exists() else []
        for mnt in volumes:
            idmap.unmount(str(mnt), lazy=True)

    async def stop(self, host_id: str) -> None:
        """Kill the container and release its runtime objects; the subvolumes stay. Idempotent."""
        await self.crun.kill_and_delete(host_id)
        # Blocking host steps (the cgroup's kill loop, unmounts, netlink, btrfs): in a worker thread,
        # so a burst of deletes does not stall the event loop that serves every other request.
        await anyio.to_thread.run_sync(self._release_runtime, host_id)

    def _release_runtime(self, host_id: str) -> None:
        cgroups.remove_cgroup(self._cgroup(host_id))
        rt = self._runtime_dir(host_id)
        self._release_mounts(host_id, rt)
        caches = sorted((rt / "cache").iterdir()) if (rt / "cache").exists() else []
        for mnt in [rt / "rootfs", rt / "workspace", *caches]:
            idmap.unmount(str(mnt), lazy=True)
        self.network.detach(host_id)
        netns.remove_netns(str(self.netns_dir / host_id))
        self._resolv_conf(host_id).unlink(missing_ok=True)
        meta = rt / "runtime.json"
        if meta.exists():
            try:
                self.uid_blocks.release(json.loads(meta.read_text(encoding="utf-8"))["uid_block"])
            except (ValueError, KeyError):
                log.warning(
                    "unreadable runtime.json for %s; its uid block is reclaimed at next start", host_id
                )
        shutil.rmtree(rt, ignore_errors=True)

    async def destroy(self, host_id: str) -> None:
        await self.stop(host_id)
        await anyio.to_thread.run_sync(self._remove_subvolumes, host_id)

    def _remove_subvolumes(self, host_id: str) -> None:
        self._buckets.drop(host_id)
        self.disk.delete(host_id)
        shutil.rmtree(self._shell_dir(host_id), ignore_errors=True)
        (self.legacy_logs_dir / f"{host_id}.log").unlink(missing_ok=True)

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        if self.template_bits.meta(spec.template) is None:
            raise TemplateNotFound(
                f"Template '{spec.template}' is not on this host; it cannot be reinstalled."
            )
        was_running = self._runtime_dir(spec.host_id).exists()
        await self.stop(spec.host_id)
        shell_dir = self._shell_dir(spec.host_id)
        self.disk.delete_subvolume(spec.host_id, "rootfs")
        if wipe_workspace:
            self.disk.delete_subvolume(spec.host_id, "workspace")
        self._fill_from_template(spec.template, shell_dir, workspace=wipe_workspace)
        if was_running:
            await self.start(spec)

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        """Read-only copies of rootfs and /workspace; the shell is frozen meanwhile so they agree."""
        running = self._runtime_dir(host_id).exists()
        dest = self._snapshot_dir(snapshot_id)
        dest.mkdir(parents=True)
        if running:
            await self.crun.pause(host_id)
        try:
            for sub in ("rootfs", "workspace"):
                self.pool.snapshot(self._shell_dir(host_id) / sub, dest / sub, readonly=True)
        except BaseException:
            await self.delete_snapshot(snapshot_id)
            raise
        finally:
            if running:
                await self.crun.resume(host_id)

    async def pause(self, host_id: str) -> None:
        raise ActionNotSupported("Container shells cannot pause to zero; stop them instead.")

    async def resume(self, spec: ShellSpec) -> None:
        raise ActionNotSupported("Container shells cannot pause to zero, so there is nothing to resume.")

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        raise ActionNotSupported("Container shells cannot fork; snapshot them and create from the snapshot.")

    async def delete_snapshot(self, snapshot_id: str) -> None:
        dest = self._snapshot_dir(snapshot_id)
        for sub in ("rootfs", "workspace"):
            if self.pool.is_subvolume(dest / sub):
                self.pool.delete_subvolume(dest / sub)
        shutil.rmtree(dest, ignore_errors=True)

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        return await snapshot_files.pack(self.pool, self._snapshot_dir(snapshot_id), dest)

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        await snapshot_files.unpack(self.pool, parts, self._snapshot_dir(snapshot_id))

    def workspace_dir(self, host_id: str) -> Path:
        return self._shell_dir(host_id) / "workspace"

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        self.template_bits.require(name)
        return await snapshot_files.pack(self.pool, self.template_bits.dir(name), dest)

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        def publish() -> None:
            if self.template_bits.meta(meta.name) is not None:
                return
            with self.template_bits.staging(meta.name) as staging:
                snapshot_files.unpack_into(self.pool, parts, staging)
                self.template_bits.commit(staging, meta)

        await anyio.to_thread.run_sync(publish)

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        return read_tail(self.disk.log(host_id), max_bytes)

    def usage(self, host_id: str) -> ResourceUsage:
        """The shell's cgroup (CPU, memory) and its subvolumes' quota group (disk)."""
        cgroup = self._cgroup(host_id)
        return ResourceUsage(
            cgroups.cgroup_cpu_seconds(cgroup),
            cgroups.cgroup_memory_now(cgroup),
            btrfs_quota.group_usage(self.pool.mount_dir, host_id),
        )

    async def inventory(self) -> HostInventory:
        states = await self.crun.list()
        shells_root, snaps_root = self._p / "shells", self._p / "snapshots"
        return HostInventory(
            running={s.id for s in states if s.status == "running"},
            paused={s.id for s in states if s.status == "paused"},
            stored={p.name for p in shells_root.iterdir()} if shells_root.exists() else set(),
            snapshots={p.name for p in snaps_root.iterdir()} if snaps_root.exists() else set(),
        )

    async def purge(self) -> None:
        """Destroy every shell, snapshot and template of this instance and release its host mounts.

        For uninstalling an instance (and for test teardown); records in the store are not touched.
        """
        if not self.pool.mount_dir.exists():
            await anyio.to_thread.run_sync(self.network.purge)
            self.pool.discard()
            return
        self.pool.ensure_mounted()
        inv = await self.inventory()
        for host_id in sorted(inv.stored | inv.running | inv.paused):
            await self.destroy(host_id)
        for snap in sorted(inv.snapshots):
            await self.delete_snapshot(snap)
        await anyio.to_thread.run_sync(self._release_stray_mounts, True)
        for rt in sorted((self.run_dir / "shells").iterdir()) if (self.run_dir / "shells").exists() else []:
            await anyio.to_thread.run_sync(self._release_mounts, rt.name, rt)
        self.template_bits.remove_all()
        caches = self._p / "cache"
        for cache in sorted(caches.iterdir()) if caches.exists() else []:
            self.pool.delete_subvolume(cache)
        cgroups.remove_cgroup(f"/{self.cgroup_prefix}")
        await anyio.to_thread.run_sync(self.network.purge)
        netns.release_private_mount(str(self.netns_dir))
        for view in (self._shared, self._runtime_tmpfs, self.crun.devices):
            idmap.unmount(str(view), lazy=True)
        self.pool.discard()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        """Apply ``policy`` to a running shell at once; a stopped one gets it from its spec at start."""
        if self.network.policy_of(host_id) is not None:
            await anyio.to_thread.run_sync(self.network.set_policy, host_id, policy)

    def _agent_runtime(self) -> agent_runtime.AgentRuntime:
        if self._runtime is None:
            raise RuntimeFailure("The container backend was not prepared: it has no agent runtime.")
        return self._runtime

    # inside the shell -----------------------------------------------------------------------------
    def _agent(self, host_id: str) -> AgentClient:
        if not self._runtime_dir(host_id).exists():
            raise RuntimeFailure("The shell's processes are not running on this host.")
        return AgentClient(self._socket(host_id))

    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        return self._agent(host_id).exec(replace(spec, env=with_default_env(spec.env, spec.user)))

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return self._agent(host_id).terminal(replace(spec, env=with_default_env(spec.env, spec.user)))

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._agent(host_id).read_file(path, max_bytes)

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        return await self._agent(host_id).write_file(path, chunks, mode=mode, owner=owner, xattrs=xattrs)

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return await self._agent(host_id).list_dir(path, xattr_prefix)

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return await self._agent(host_id).stat(path, xattr_prefix)

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        await self._agent(host_id).remove(path, recursive=recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        await self._agent(host_id).mkdir(path, parents=True, owner=owner)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        return await self._agent(host_id).rename(source, destination)

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        await self._agent(host_id).signal(pid, signum)

    def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        return self._agent(host_id).attach(pid, more)

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return await self._agent(host_id).processes()

    def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        return self._agent(host_id).watch(path, recursive)


def _listen(path: str) -> socket.socket:
    """A listening unix socket at ``path``, reachable by root only (the host connects as root)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        Path(path).chmod(0o600)
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
