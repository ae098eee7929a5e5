"""Templates in the btrfs pool: ``P/templates/<name>/{rootfs, workspace, template.json}``.

``rootfs`` is a read-only subvolume; ``workspace`` (a read-only subvolume too) exists only for a
template saved with its shell's /workspace; ``template.json`` is the template's metadata, so the bits
carry their own description (the store's record is rebuilt from it for built-ins after a reset).

A template directory appears by one rename of a complete staging directory, so it is either absent
or whole; it disappears by one rename to a trash name before its subvolumes are deleted. Entries whose
names start with '.' are staging or trash and are removed at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ...domain.errors import RuntimeFailure, TemplateExists, TemplateNotFound
from ...domain.templates import TemplateMeta
from ..host.btrfs import BtrfsPool
from ..images import host_local_cas, import_rootfs, make_ext4, pack_rootfs, tree_usage, untrust_host_cas

META_FILE = "template.json"
VM_AGENT_DIR = ".shells-agent"
"""Where a microvm image of a template without Python holds the agent's runtime."""


def write_json_atomic(path: Path, doc: dict[str, object]) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}-{os.urandom(4).hex()}")
    partial.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.rename(path)


class TemplateBits:
    def __init__(self, pool: BtrfsPool, host_ca_dir: Path) -> None:
        self.pool = pool
        self.host_ca_dir = host_ca_dir
        """The host's local CAs, trusted by every template imported here (see ``images``)."""

    @property
    def root(self) -> Path:
        return self.pool.mount_dir / "templates"

    def dir(self, name: str) -> Path:
        return self.root / name

    def rootfs(self, name: str) -> Path:
        return self.dir(name) / "rootfs"

    def workspace(self, name: str) -> Path | None:
        path = self.dir(name) / "workspace"
        return path if path.exists() else None

    def meta(self, name: str) -> TemplateMeta | None:
        try:
            doc = json.loads((self.dir(name) / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise RuntimeFailure(f"template {name}: unreadable {META_FILE}: {exc}") from exc
        return TemplateMeta.from_json(doc)

    def require(self, name: str) -> TemplateMeta:
        meta = self.meta(name)
        if meta is None:
            raise TemplateNotFound(f"Template '{name}' is not on this host.", {"template": name})
        return meta

    def all(self) -> list[TemplateMeta]:
        if not self.root.exists():
            return []
        found = (self.meta(p.name) for p in sorted(self.root.iterdir()) if not p.name.startswith("."))
        return [m for m in found if m is not None]

    # making and removing ----------------------------------------------------------------------------
    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A fresh staging directory for template ``name``; removed if the block raises."""
        if self.dir(name).exists():
            raise TemplateExists(f"Template '{name}' already exists on this host.", {"name": name})
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{name}.new-{os.urandom(6).hex()}"
        staging.mkdir()
        try:
            yield staging
        except BaseException:
            self._remove_dir(staging)
            raise

    def commit(self, staging: Path, meta: TemplateMeta) -> TemplateMeta:
        """Measure, describe and publish a staged template (``staging/rootfs`` must be read-only)."""
        size, _ = tree_usage(staging / "rootfs")
        has_workspace = (staging / "workspace").exists()
        if has_workspace:
            size += tree_usage(staging / "workspace")[0]
        versions = dict(meta.versions)
        debian = staging / "rootfs" / "etc" / "debian_version"
        if "debian" not in versions and debian.exists():
            versions = {"debian": debian.read_text(encoding="utf-8").strip(), **versions}
        meta = replace(
            meta,
            versions=versions,
            size_bytes=size,
            has_workspace=has_workspace,
            created_at=datetime.now(UTC),
        )
        write_json_atomic(staging / META_FILE, meta.to_json())
        try:
            staging.rename(self.dir(meta.name))
        except OSError as exc:  # ENOTEMPTY/EEXIST: someone published the same name meanwhile
            self._remove_dir(staging)
            raise TemplateExists(f"Template '{meta.name}' already exists on this host.") from exc
        return meta

    def clone(self, source: str, meta: TemplateMeta) -> TemplateMeta:
        """Publish template ``source``'s bits (its /workspace too) again as ``meta.name``: snapshots,
        so the two share every block."""
        with self.staging(meta.name) as staging:
            self.pool.snapshot(self.rootfs(source), staging / "rootfs", readonly=True)
            workspace = self.workspace(source)
            if workspace is not None:
                self.pool.snapshot(workspace, staging / "workspace", readonly=True)
            return self.commit(staging, meta)

    def import_tarball(self, tarball: Path, meta: TemplateMeta) -> TemplateMeta:
        """Publish ``tarball`` (a packed rootfs) as template ``meta.name``, trusting the CAs the host
        trusts locally now."""
        with self.staging(meta.name) as staging:
            import_rootfs(self.pool, tarball, staging / "rootfs", host_local_cas(self.host_ca_dir))
            return self.commit(staging, meta)

    def remove(self, name: str) -> None:
        """Delete template ``name`` (idempotent): first out of sight, then its subvolumes."""
        path = self.dir(name)
        if not path.exists():
            return
        trash = self.root / f".{name}.trash-{os.urandom(6).hex()}"
        path.rename(trash)
        self._remove_dir(trash)

    def remove_leftovers(self) -> None:
        """Staging and trash directories of an interrupted run, and the pre-``name:tag`` layout where a
        template was itself a subvolume."""
        if not self.root.exists():
            return
        for entry in sorted(self.root.iterdir()):
            if self.pool.is_subvolume(entry):
                self.pool.delete_subvolume(entry)
            elif entry.name.startswith(".") or not (entry / META_FILE).exists():
                self._remove_dir(entry)

    def remove_all(self) -> None:
        for meta in self.all():
            self.remove(meta.name)
        self.remove_leftovers()

    def _remove_dir(self, path: Path) -> None:
        if path.is_dir():
            for entry in path.iterdir():
                if self.pool.is_subvolume(entry):
                    self.pool.delete_subvolume(entry)
        shutil.rmtree(path, ignore_errors=True)

    # exporting --------------------------------------------------------------------------------------
    def export_tarball(self, name: str, tarball: Path) -> None:
        """Pack the rootfs, without the host's CAs (each import adds the host's own), to ``tarball`` and
        its metadata to ``tarball`` + ``.json`` (written last, so its presence means the pair is
        complete)."""
        meta = self.require(name)
        tarball.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.root / f".{name}.export-{os.urandom(6).hex()}"
        self.pool.snapshot(self.rootfs(name), scratch, readonly=False)
        try:
            untrust_host_cas(scratch)
            pack_rootfs(scratch, tarball)
        finally:
            self.pool.delete_subvolume(scratch)
        write_json_atomic(tarball.with_name(tarball.name + ".json"), meta.to_json())

    def export_ext4(self, name: str, image: Path, agent_runtime: Path | None = None) -> None:
        """Write the template (with its saved /workspace, if any) into an ext4 image file. A template
        without ``/usr/bin/python3`` (an image with no Python) gets ``agent_runtime`` at
        ``/.shells-agent``, which a microvm's init runs the agent from."""
        self.require(name)
        image.parent.mkdir(parents=True, exist_ok=True)
        workspace = self.workspace(name)
        python = self.rootfs(name) / "usr" / "bin" / "python3"
        needs_runtime = agent_runtime is not None and not (python.exists() or python.is_symlink())
        if workspace is None and not needs_runtime:
            make_ext4(self.rootfs(name), image)
            return
        merged = self.root / f".{name}.ext4-{os.urandom(6).hex()}"
        self.pool.snapshot(self.rootfs(name), merged, readonly=False)
        try:
            if workspace is not None:
                copy_tree(workspace, merged / "workspace")
            if needs_runtime and agent_runtime is not None:
                shutil.rmtree(merged / VM_AGENT_DIR, ignore_errors=True)  # never the image's own
                (merged / VM_AGENT_DIR).mkdir(mode=0o755)
                copy_tree(agent_runtime, merged / VM_AGENT_DIR)
            make_ext4(merged, image)
        finally:
            self.pool.delete_subvolume(merged)


def copy_tree(src: Path, dest: Path) -> None:
    """Copy the contents of ``src`` into the existing directory ``dest``, keeping owners, modes, xattrs
    and hard links; on btrfs the data is shared (reflinks), so this costs metadata only."""
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", f"{src}/.", str(dest)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeFailure(f"copying {src} to {dest} failed: {proc.stderr.strip()[-2000:]}")
