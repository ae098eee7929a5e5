"""The contract every isolation class implements (container now; microvm and wasm later).

The control layer only talks to a ``Backend``; it never knows about crun, QEMU or wasmtime. Host
objects are named by ``host_id`` (the shell id), so a backend can find everything again after a
server restart without asking the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..domain.capabilities import Capability
from ..domain.execution import ExecEvent, ExecSpec, FileChange, FileEntry, KeptProcess, WindowSize
from ..domain.isolation import Runtime
from ..domain.mounts import BucketMount
from ..domain.network import NetworkAccess, NetworkMode, PrivateNetwork
from ..domain.runtimes import RuntimeOffer
from ..domain.samples import ResourceUsage
from ..domain.shapes import Shape
from ..domain.templates import BuildProgress, TemplateMeta
from ..domain.terminal import TerminalIO, TerminalSpec


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last ``max_bytes`` of a log file (nothing if it is not there): every backend's ``logs``."""
    if not path.exists():
        return b""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        return f.read()


def marked_inventory(shells: Path, snapshots: Path) -> HostInventory:
    """The inventory of a class whose shell is a directory under ``shells`` with ``stopped`` or
    ``paused`` marker files (nothing runs between requests), and a snapshot one under ``snapshots``."""
    stored = {p.name for p in shells.iterdir()} if shells.exists() else set()
    stopped = {s for s in stored if (shells / s / "stopped").exists()}
    paused = {s for s in stored - stopped if (shells / s / "paused").exists()}
    return HostInventory(
        running=stored - stopped - paused,
        paused=paused,
        stored=stored,
        snapshots={p.name for p in snapshots.iterdir()} if snapshots.exists() else set(),
    )


@dataclass(frozen=True)
class VolumeMount:
    """A volume's host directory (``runtime.volumes``) bound at ``path`` in the shell."""

    source: Path
    path: str
    read_only: bool


@dataclass(frozen=True)
class ShellSpec:
    """What a backend needs to build and run one shell."""

    host_id: str
    template: str
    shape: Shape
    network: NetworkAccess
    source_snapshot: str | None = None
    cache_dirs: tuple[str, ...] = ()
    """Directories inside the shell backed by a per-instance cache that every shell asking for the same
    path shares (template builds share apt's downloads this way)."""
    networks: tuple[PrivateNetwork, ...] = ()
    """Private networks the shell is on from its start."""
    hostname: str | None = None
    """The shell's name on its private networks (peers resolve it); None uses ``host_id``."""
    brokered: bool = False
    """The shell has secrets: its HTTPS goes through the host's egress proxy (docs/secrets.md)."""
    buckets: tuple[BucketMount, ...] = ()
    """Users' buckets served from the host at paths in the shell (docs/storage.md); each start
    mounts them again, and stop unmounts them."""
    volumes: tuple[VolumeMount, ...] = ()


@dataclass(frozen=True)
class HostInventory:
    """What exists on the host right now, for reconciliation."""

    running: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    stored: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)


class Backend(Protocol):
    runtime: Runtime
    capabilities: frozenset[Capability]
    network_modes: frozenset[NetworkMode]
    port_address: str
    """Where a shell's servers are reached from inside its network namespace (the ingress connects
    there for an exposed port): ``127.0.0.1`` when the processes share the namespace (containers),
    the guest's address behind its tap for a VM."""

    async def prepare(self) -> None:
        """Make the host ready (mounts, cgroup fixes, templates). Idempotent; called at start-up."""

    def details(self) -> dict[str, str]:
        """Facts about how this class runs on this host (e.g. the OCI runtime, or a microVM's
        acceleration), shown in ``GET /v1/info`` and on every shell of the class."""

    def offers(self) -> list[RuntimeOffer]:
        """One entry per language preset: available here or not, its version, and notes."""

    def templates(self) -> dict[str, str]:
        """Template name → version description, for the templates this host has ready."""

    def template_meta(self, name: str) -> TemplateMeta | None:
        """The metadata of template ``name`` if it is ready on this host."""

    def list_templates(self) -> list[TemplateMeta]:
        """Every template ready on this host."""

    async def ensure_template(
        self, name: str, progress: BuildProgress | None = None, *, allow_build: bool = True
    ) -> TemplateMeta:
        """Make the built-in ``name`` ready: import it from the host cache, or build it and its parents
        (reporting to ``progress``; without ``allow_build``, raise TemplateNotBuilt instead). Any
        other name must exist, else TemplateNotFound."""

    async def capture_template(
        self, host_id: str, meta: TemplateMeta, include_workspace: bool
    ) -> TemplateMeta:
        """Publish the shell's root filesystem (and /workspace if asked) as the read-only template
        ``meta.name``; returns ``meta`` measured (size) and dated."""

    async def delete_template(self, name: str) -> None:
        """Remove template ``name`` from this host (idempotent). Shells made from it are unaffected."""

    async def export_ext4(self, name: str, dest: Path) -> None:
        """Write template ``name`` as an ext4 image file (for the microvm class)."""

    async def create(self, spec: ShellSpec) -> None:
        """Build the shell's filesystem from its template or snapshot and start it."""

    async def start(self, spec: ShellSpec) -> None: ...

    async def stop(self, host_id: str) -> None:
        """End every process of the shell; keep its filesystem."""

    async def set_network(self, host_id: str, policy: NetworkAccess) -> None:
        """Apply a new network policy to a running shell without restarting it (mode changes too);
        for a shell that is not running this does nothing: its next start uses its spec."""

    async def destroy(self, host_id: str) -> None:
        """Release everything the shell holds on the host. Idempotent."""

    async def reset(self, spec: ShellSpec, *, wipe_workspace: bool) -> None:
        """Put the root filesystem (and with ``wipe_workspace`` also /workspace) back to the template."""

    async def snapshot(self, host_id: str, snapshot_id: str) -> None:
        """Record the shell's state as snapshot ``snapshot_id`` (the filesystem; a class that can
        pause also its memory), from which ``create`` with ``source_snapshot`` starts new shells."""

    async def pause(self, host_id: str) -> None:
        """Save the running shell's whole state to disk and end its processes: compute drops to zero.
        Called only for a class with ``Capability.PAUSE``."""

    async def resume(self, spec: ShellSpec) -> None:
        """Bring a paused shell back exactly where it was paused: its processes, open files and
        memory continue. Called only for a class with ``Capability.RESUME``."""

    async def fork(self, host_id: str, children: Sequence[ShellSpec]) -> None:
        """Start every one of ``children`` from the shell's current state (memory and files), each
        independent from then on; the shell itself keeps running (or stays paused). All or nothing:
        on failure every child started so far is destroyed before the error is raised. Called only
        for a class with ``Capability.FORK``."""

    async def delete_snapshot(self, snapshot_id: str) -> None: ...

    async def export_snapshot(self, snapshot_id: str, dest: Path) -> dict[str, Path]:
        """Write snapshot ``snapshot_id`` as files in ``dest`` for the object store (part name →
        file). A class whose snapshots cannot leave this host raises ActionNotSupported."""

    async def export_template(self, name: str, dest: Path) -> dict[str, Path]:
        """Write template ``name`` as files in ``dest`` for the object store (part name → file);
        a class that keeps no templates of its own raises ActionNotSupported."""

    async def import_template(self, meta: TemplateMeta, parts: Mapping[str, Path]) -> None:
        """Publish template ``meta.name`` from the files ``export_template`` wrote on another host
        (nothing if it is here already)."""

    def workspace_dir(self, host_id: str) -> Path:
        """The host directory that is the shell's /workspace, for the host to read itself (workspace
        sync), never following a link the shell made. A class whose /workspace is inside a VM's
        disk raises ActionNotSupported."""

    async def import_snapshot(self, snapshot_id: str, parts: Mapping[str, Path]) -> None:
        """Make snapshot ``snapshot_id`` on this host from the files ``export_snapshot`` wrote on
        another (nothing if it is here already)."""

    async def logs(self, host_id: str, max_bytes: int) -> bytes: ...

    async def inventory(self) -> HostInventory: ...

    def usage(self, host_id: str) -> ResourceUsage:
        """CPU, memory and disk of the shell read on the host (never asked of the agent); parts
        that do not apply now (a paused VM's CPU) are None. Cheap: called every few seconds."""
        ...

    def exec(self, host_id: str, spec: ExecSpec) -> AsyncIterator[ExecEvent]: ...

    def terminal(self, host_id: str, spec: TerminalSpec) -> AbstractAsyncContextManager[TerminalIO]:
        """An interactive process on a pseudo-terminal, killed when the context is left. A class
        without terminals (wasm) raises ActionNotSupported when the context is entered."""

    def read_file(self, host_id: str, path: str, max_bytes: int) -> AsyncIterator[bytes]: ...

    async def write_file(
        self,
        host_id: str,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        """Write a file; with ``owner`` it belongs to that Linux user of the shell, ``xattrs``
        (``user.…``) are set on it (a class without users or xattrs, wasm, raises ActionNotSupported)."""

    async def list_dir(self, host_id: str, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        """A directory's entries (with ``xattr_prefix``, as in ``stat``)."""

    async def stat(self, host_id: str, path: str, xattr_prefix: str | None = None) -> FileEntry:
        """The entry at ``path``; with ``xattr_prefix`` its extended attributes so named in
        ``metadata`` (a class without them reports none)."""

    async def remove(self, host_id: str, path: str, recursive: bool) -> None: ...

    async def mkdir(self, host_id: str, path: str, owner: str | None = None) -> None:
        """Make a directory and its missing parents (owned by ``owner`` if given, as in write_file)."""

    async def rename(self, host_id: str, source: str, destination: str) -> FileEntry:
        """Move a file or directory within the shell; returns the entry at its new path."""

    def watch(self, host_id: str, path: str, recursive: bool) -> AsyncIterator[FileChange | None]:
        """None once the watch is in place, then the changes in a directory of the shell as they
        happen, until the iterator is closed (ActionNotSupported for a class without an agent, wasm)."""

    def attach(
        self, host_id: str, pid: int, more: AsyncIterable[bytes | WindowSize] | None
    ) -> AsyncIterator[ExecEvent]:
        """Follow a kept process again (``ExecSpec.keep``) as ``exec`` follows a new one, ``more``
        feeding its stdin; closing the iterator detaches it again."""

    async def processes(self, host_id: str) -> list[KeptProcess]:
        """The shell's running kept processes (none for a class without them)."""

    async def signal(self, host_id: str, pid: int, signum: int) -> None:
        """Signal a running command of the shell by the pid its ExecStarted named (ProcessNotFound if
        it is not one; ActionNotSupported for a class whose commands have no pids)."""
