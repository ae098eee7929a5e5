"""A node without root: the ``Backend`` contract with shells as directories, plus a null network.

It exists so the layers above the runtime (control, REST, MCP, both SDKs, the CLI) can be driven
in-process by a user without root, crun, btrfs or a host network. It isolates nothing: a command
runs as a local subprocess of the test with the shell's ``workspace`` directory as its working
directory. Never serve it.

A shell is ``root/shells/<id>/`` with ``workspace/`` (the only filesystem the files API sees, through
the wasm class's link-refusing ``workspace_fs``) and ``stopped`` / ``paused`` markers. Snapshots and
forks are copies of ``workspace``. Templates are names: ``base:1`` and ``python:1`` are ready, as
after ``make up``; another built-in is "built" on ``ensure_template`` with progress events, or
refused with ``TemplateNotBuilt`` when a build is not allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from pathlib import Path

import anyio

from shells.domain.capabilities import SUSPENDABLE, Capability
from shells.domain.errors import ActionNotSupported, RuntimeFailure, TemplateNotBuilt, TemplateNotFound
from shells.domain.execution import (
    ExecEvent,
    ExecExit,
    ExecSpec,
    ExecStarted,
    FileChange,
    FileEntry,
    KeptProcess,
    OutputChunk,
    WindowSize,
)
from shells.domain.isolation import PRESET_TEMPLATES, Runtime
from shells.domain.network import AllowRule, BlockedAttempt, NetworkAccess, NetworkMode, PrivateNetwork
from shells.domain.paths import WORKSPACE
from shells.domain.runtimes import RuntimeOffer
from shells.domain.samples import ResourceUsage
from shells.domain.templates import BuildOutput, BuildProgress, BuildStepStarted, TemplateMeta
from shells.domain.terminal import TerminalIO, TerminalSpec
from shells.runtime.backend import HostInventory, ShellSpec, marked_inventory, read_tail
from shells.runtime.network.addressing import InstanceRange
from shells.runtime.network.dataplane import ShellAddresses
from shells.runtime.templates.catalog import builtins
from shells.runtime.wasm import workspace_fs

READY_AT_START = ("base:1", "python:1")
"""The templates a fresh fake node has, like a host after ``make up``."""


@dataclass
class FakeNode:
    """A ``Backend`` of one isolation class whose shells are directories under ``root``."""

    root: Path
    runtime: Runtime = Runtime.CONTAINER
    capabilities: frozenset[Capability] = SUSPENDABLE
    network_modes: frozenset[NetworkMode] = frozenset(NetworkMode)
    port_address: str = "127.0.0.1"
    ready: dict[str, TemplateMeta] = field(default_factory=dict)
    builds: list[str] = field(default_factory=list)
    """Every built-in this node built, in order (a test can tell an import from a build)."""
    build_step_s: float = 0.0
    """How long each of a build's two steps takes (a browser test needs time to see the progress)."""
    machine: str = ""
    """Set: this node's snapshots carry it (part ``machine``), and it refuses to fetch one that
    names another, as a microvm node refuses a VM's state saved on another machine
    (``runtime.microvm.portable``)."""

    def __post_init__(self) -> None:
        for name in READY_AT_START:
            self.ready.setdefault(name, _built(builtins()[name].meta()))

    # paths ----------------------------------------------------------------------------------------
    def shell_dir(self, host_id: str) -> Path:
        return self.root / "shells" / host_id

    def workspace(self, host_id: str) -> Path:
        return self.shell_dir(host_id) / "workspace"

    def _snapshot(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / snapshot_id

    # the host -------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        for d in (self.root / "shells", self.root / "snapshots"):
            d.mkdir(parents=True, exist_ok=True)

    def details(self) -> dict[str, str]:
        return {"node": "fake (directories and local processes; isolates nothing)"}

    def offers(self) -> list[RuntimeOffer]:
        return [
            RuntimeOffer(language, True, "", f"template {template}")
            for language, template in PRESET_TEMPLATES.items()
        ]

    # templates ------------------------------------------------------------------------------------
    def templates(self) -> dict[str, str]:
        return dict.fromkeys(self.ready, "fake")

    def template_meta(self, name: str) -> TemplateMeta | None:
        return self.ready.get(name)

    def list_templates(self) -> list[TemplateMeta]:
        return list(self.ready.values())

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        if name in self.ready:
            return self.ready[name]
        builtin = builtins().get(name)
        if builtin is None:
            raise TemplateNotFound(f"Template '{name}' is not on this host.", {"template": name})
        if not allow_build:
            raise TemplateNotBuilt(
                f"The built-in template '{name}' is not built on this server yet.",
                {"template": name, "estimated_seconds": 1},
            )
        if builtin.parent is not None and builtin.parent not in self.ready:
            await self.ensure_template(builtin.parent, progress)
        for index, step in enumerate(("install packages", "record versions"), 1):
            if progress is not None:
                progress(BuildStepStarted(index, 2, step))
                progress(BuildOutput(f"{step} of {name}\n"))
            await asyncio.sleep(self.build_step_s)
        self.builds.append(name)
        self.ready[name] = _built(builtin.meta())
        return self.ready[name]

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        self.ready[meta.name] = captured = replace(_built(meta), has_workspace=include_workspace)
        return captured

    async def delete_template(self, name: str) -> None:
        self.ready.pop(name, None)

    async def export_ext4(self, name: str, dest: Path) -> None:
        raise ActionNotSupported("The fake node has no images.")

    # lifecycle ------------------------------------------------------------------------------------
    async def create(self, spec: ShellSpec) -> None:
        if spec.template not in self.ready and spec.source_snapshot is None:
            raise TemplateNotFound(f"Template '{spec.template}' is not on this host.")
        self.shell_dir(spec.host_id).mkdir(parents=True)
        source = None if spec.source_snapshot is None else self._snapshot(spec.source_snapshot)
        _copy_or_make(source, self.workspace(spec.host_id))

    async def start(self, spec: ShellSpec) -> None:
        for marker in ("stopped", "paused"):
            (self.shell_dir(spec.host_id) / marker).unlink(missing_ok=True)

    async def stop(self, host_id: str) -> None:
        if self.shell_dir(host_id).exists():
            (self.shell_dir(host_id) / "stopped").touch()

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        return None

    async def destroy(self, host_id: str) -> None:
        shutil.rmtree(self.shell_dir(host_id), ignore_errors=True)

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        if wipe_workspace:
            shutil.rmtree(self.workspace(spec.host_id))
            self.workspace(spec.host_id).mkdir()

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        _copy_or_make(self.workspace(host_id), self._snapshot(snapshot_id))

    async def pause(self, host_id: str) -> None:
        (self.shell_dir(host_id) / "paused").touch()

    async def resume(self, spec: ShellSpec) -> None:
        (self.shell_dir(spec.host_id) / "paused").unlink(missing_ok=True)

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        made: list[str] = []
        try:
            for child in children:
                self.shell_dir(child.host_id).mkdir(parents=True)
                made.append(child.host_id)
                _copy_or_make(self.workspace(host_id), self.workspace(child.host_id))
        except BaseException:
            for child_id in made:
                await self.destroy(child_id)
            raise

    async def delete_snapshot(self, snapshot_id: str) -> None:
        shutil.rmtree(self._snapshot(snapshot_id), ignore_errors=True)

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        """The snapshot's workspace as one tar file."""
        base = str(dest / "workspace")
        archive = await anyio.to_thread.run_sync(
            lambda: shutil.make_archive(base, "tar", self._snapshot(snapshot_id))
        )
        if not self.machine:
            return {"workspace": Path(archive)}
        (dest / "machine").write_text(self.machine, encoding="utf-8")
        return {"workspace": Path(archive), "machine": dest / "machine"}

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        """A template here is a name: one file holding it."""
        (dest / "rootfs").write_text(name, encoding="utf-8")
        return {"rootfs": dest / "rootfs"}

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        self.ready.setdefault(meta.name, meta)

    def workspace_dir(self, host_id: str) -> Path:
        return self.workspace(host_id)

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        saved_on = parts["machine"].read_text(encoding="utf-8") if "machine" in parts else ""
        if saved_on and saved_on != self.machine:
            raise ActionNotSupported(
                f"Snapshot {snapshot_id} was saved on machine {saved_on!r}, not {self.machine!r}."
            )
        if not self._snapshot(snapshot_id).exists():
            staging = self._snapshot(f".{snapshot_id}.fetch")
            shutil.unpack_archive(parts["workspace"], staging, "tar")
            staging.rename(self._snapshot(snapshot_id))

    def usage(self, host_id: str) -> ResourceUsage:
        """Nothing is measured on a fake node."""
        return ResourceUsage(None, None, None)

    async def logs(self, host_id: str, max_bytes: int) -> bytes:
        return read_tail(self.shell_dir(host_id) / "log", max_bytes)

    async def inventory(self) -> HostInventory:
        return marked_inventory(self.root / "shells", self.root / "snapshots")

    # inside ---------------------------------------------------------------------------------------
    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        return self._exec(host_id, spec)

    async def _exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]:
        workspace = self.workspace(host_id)
        if not workspace.is_dir():
            raise RuntimeFailure("The shell's directory is not on this node.")
        cwd = workspace / os.path.relpath(spec.cwd or WORKSPACE, WORKSPACE)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workspace), **spec.env}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *spec.effective_argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = False
        try:
            yield ExecStarted(pid=proc.pid)
            try:
                async with asyncio.timeout(spec.timeout_s):
                    out, err = await proc.communicate(spec.stdin)
            except TimeoutError:
                timed_out = True
                proc.kill()
                out, err = await proc.communicate()
            cap = spec.output_cap_bytes
            if out:
                yield OutputChunk("stdout", out[:cap])
            if err:
                yield OutputChunk("stderr", err[: max(0, cap - len(out))])
            code = proc.returncode if proc.returncode is not None else -1
            done = ExecExit(
                exit_code=code if code >= 0 else 128 - code,
                signal=-code if code < 0 else None,
                timed_out=timed_out,
                truncated=len(out) + len(err) > cap,
                duration_ms=(time.monotonic() - started) * 1000,
            )
            with (self.shell_dir(host_id) / "log").open("a", encoding="utf-8") as log:
                log.write(f"{spec.effective_argv[0]}: exit {done.exit_code}\n")
            yield done
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        return _no_terminal()

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._read(host_id, path, max_bytes)

    async def _read(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        for chunk in workspace_fs.read_chunks(self.workspace(host_id), path, max_bytes):
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
        if owner is not None or xattrs:
            raise ActionNotSupported("The fake node has no Linux users or extended attributes.")
        data = [chunk async for chunk in chunks]
        return await anyio.to_thread.run_sync(
            workspace_fs.write_file, self.workspace(host_id), path, iter(data), mode
        )

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        return workspace_fs.list_dir(self.workspace(host_id), path)

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        return workspace_fs.stat_path(self.workspace(host_id), path)

    async def remove(self, host_id: str, path: str, recursive: bool) -> None:
        workspace_fs.remove(self.workspace(host_id), path, recursive)

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        if owner is not None:
            raise ActionNotSupported("The fake node has no Linux users to own files.")
        workspace_fs.mkdir(self.workspace(host_id), path)

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        raise ActionNotSupported("The fake node cannot rename files.")

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        raise ActionNotSupported("The fake node keeps no processes to signal.")

    async def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        raise ActionNotSupported("The fake node keeps no processes to attach to.")
        yield  # an async generator, as the contract says

    async def processes(self, host_id: str) -> list[KeptProcess]:
        return []

    async def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        raise ActionNotSupported("The fake node cannot watch directories.")
        yield  # an async generator, as the contract says


class NullNetwork:
    """The instance network of a node without one: no addresses, no private networks' plumbing,
    nothing blocked (every shell is as if sealed, whatever its policy says)."""

    def __init__(self) -> None:
        self._networks: dict[str, set[str]] = {}

    @property
    def range(self) -> InstanceRange:
        return InstanceRange(IPv4Network("10.250.0.0/16"))

    def addresses(self, host_id: str) -> ShellAddresses:
        raise RuntimeFailure("The null network holds no shells.")

    def gateway_addresses(self) -> list[IPv4Address]:
        return []

    def create_network(self, net: PrivateNetwork) -> None:
        self._networks.setdefault(net.id, set())

    def delete_network(self, net_id: str) -> None:
        self._networks.pop(net_id, None)

    def join(self, host_id: str, net: PrivateNetwork, hostname: str) -> str:
        self._networks.setdefault(net.id, set()).add(host_id)
        return ""

    def leave(self, host_id: str, net_id: str) -> None:
        self._networks.get(net_id, set()).discard(host_id)

    def peers(self, net_id: str) -> dict[str, IPv4Address]:
        return {}

    def memberships(self, host_id: str) -> list[str]:
        return [net for net, members in self._networks.items() if host_id in members]

    def client_of(self, ip: IPv4Address | IPv6Address) -> str | None:
        return None

    def netns_of(self, host_id: str) -> str | None:
        return None

    def policy_of(self, host_id: str) -> NetworkAccess | None:
        return None

    def drain_blocked(self) -> list[tuple[str, BlockedAttempt]]:
        return []

    def allow_resolved(
        self, host_id: str, rule: AllowRule, addresses: Sequence[IPv4Address | IPv6Address], ttl_s: int
    ) -> None:
        return None

    # NodeOverlay: no shell has a port, so no network has a member to link
    def overlay_members(self) -> dict[str, dict[str, IPv4Address]]:
        return {}

    def set_overlay(self, local: IPv4Address, plan: Mapping[str, object]) -> None:
        return None


def _built(meta: TemplateMeta) -> TemplateMeta:
    return replace(meta, size_bytes=0, created_at=datetime.now(UTC))


def _copy_or_make(source: Path | None, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        dest.mkdir()
    else:
        shutil.copytree(source, dest, symlinks=True)


@asynccontextmanager
async def _no_terminal() -> AsyncIterator[TerminalIO]:
    raise ActionNotSupported("The fake node has no terminals.")
    yield  # pragma: no cover - makes this a generator
