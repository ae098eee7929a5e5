"""cgroup v1 (hybrid) host plumbing: the hugetlb fix crun needs, listing, removal and memory readers.

Paths passed in are cgroup paths as crun's ``cgroupsPath`` spells them (``/shells/<instance>/<id>``);
they exist once per v1 hierarchy (``/sys/fs/cgroup/memory/shells/...``, ``.../pids/shells/...``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc

CGROUP_ROOT = Path("/sys/fs/cgroup")

Mounts = Sequence[tuple[str, str, str, str, str]]
"""Rows of ``_libc.mount_points()``, passed in by a step that reads the table once for several uses."""

_KILL_DEADLINE_S = 5.0
"""Upper bound on how long remove_cgroup waits for killed processes to leave the cgroup."""


def instance_cgroup(instance_id: str) -> str:
    """The cgroup (below each hierarchy's root) that holds every shell of one instance."""
    return f"shells-{instance_id}"


def ensure_hybrid_cgroup_fix(root: Path = CGROUP_ROOT) -> bool:
    """Move controllers that sit in the hybrid host's cgroup2 mount onto v1 mounts of their own.

    On a hybrid host, crun refuses to run ("cgroups in hybrid mode not supported, drop all controllers
    from cgroupv2") while ``unified/cgroup.controllers`` is non-empty. On this host it lists ``hugetlb``
    because hugetlb has no v1 mount; mounting it as v1 empties the list. Returns whether anything was
    mounted. Pure v2 (``root`` is itself cgroup2) and pure v1 (no ``unified``) hosts are left alone.
    """
    if (root / "cgroup.controllers").exists():
        return False  # pure v2
    unified = root / "unified" / "cgroup.controllers"
    if not unified.exists():
        return False  # pure v1
    controllers = unified.read_text().split()
    v1 = _v1_mounts(root)
    changed = False
    for controller in controllers:
        target = root / controller
        if any(controller in ctrls for mp, ctrls in v1.items() if mp == str(target)):
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            _libc.mount(
                "cgroup", target, "cgroup", _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC, controller
            )
        except OSError as exc:
            raise RuntimeFailure(
                f"mounting the {controller} cgroup v1 controller at {target} failed: {exc.strerror}. "
                "crun cannot run on this hybrid host until no controller is left in cgroup2."
            ) from exc
        changed = True
    if changed:  # a hierarchy more than what was found before
        _EVERY.pop(root, None)
        _HIERARCHIES.clear()
    return changed


def _v1_mounts(root: Path = CGROUP_ROOT, mounts: Mounts | None = None) -> dict[str, set[str]]:
    """v1 hierarchy mount points under ``root`` → the controllers (or ``name=...``) they carry."""
    prefix = str(root).rstrip("/") + "/"
    found: dict[str, set[str]] = {}
    for mp, fstype, _source, opts, _optional in _libc.mount_points() if mounts is None else mounts:
        if fstype == "cgroup" and mp.startswith(prefix):
            found[mp] = {o for o in opts.split(",") if o not in ("rw", "ro")}
    return found


def v1_hierarchies(root: Path = CGROUP_ROOT, mounts: Mounts | None = None) -> list[Path]:
    """One mount point per v1 hierarchy (co-mounted controllers appear once)."""
    return [Path(mp) for mp in sorted(_v1_mounts(root, mounts))]


def unified_hierarchies(root: Path = CGROUP_ROOT, mounts: Mounts | None = None) -> list[Path]:
    """cgroup2 mounts under ``root``: on a hybrid host crun creates every shell's cgroup there too."""
    prefix = str(root).rstrip("/") + "/"
    table = _libc.mount_points() if mounts is None else mounts
    return sorted(Path(mp) for mp, fstype, *_ in table if fstype == "cgroup2" and mp.startswith(prefix))


_HIERARCHIES: dict[tuple[str, Path], Path] = {}
"""Where each v1 controller's hierarchy is mounted, once found (it stays there while the host runs):
the metrics sampler reads every shell's memory and CPU every few seconds, and parsing the mount
table for each read cost O(mounts) per shell — at 1,000 shells, with their thousands of mounts, it
took most of a core."""


_EVERY: dict[Path, list[Path]] = {}
"""Every hierarchy under a root, once found (as ``_HIERARCHIES``): each delete looks for the shell's
cgroup in all of them, and the mount table they were read from holds every shell's mounts (~3
each), so reading it per delete made a delete's cost grow with the shells on the host."""


def _every_hierarchy(root: Path) -> list[Path]:
    found = _EVERY.get(root)
    if found is None:
        mounts = _libc.mount_points()
        found = _EVERY[root] = v1_hierarchies(root, mounts) + unified_hierarchies(root, mounts)
    return found


def _hierarchy_of(controller: str, root: Path) -> Path | None:
    found = _HIERARCHIES.get((controller, root))
    if found is None:
        for mp, ctrls in sorted(_v1_mounts(root).items()):
            if controller in ctrls:
                found = _HIERARCHIES[(controller, root)] = Path(mp)
                break
    return found


def _rel(path: str) -> str:
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        raise RuntimeFailure(f"refusing to touch cgroup path {path!r}: give a non-root path like /shells/x")
    return rel


def instance_cgroup_children(prefix: str, root: Path = CGROUP_ROOT) -> set[str]:
    """Names of the child cgroups under ``/<prefix>`` in any v1 hierarchy (the union).

    A shell's cgroup path is then ``f"/{prefix}/{name}"``; reconciliation compares the names to the
    shells it knows and removes the rest with :func:`remove_cgroup`.
    """
    rel = _rel(prefix)
    names: set[str] = set()
    for hierarchy in v1_hierarchies(root):
        base = hierarchy / rel
        try:
            with os.scandir(base) as entries:
                names.update(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    return names


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except FileNotFoundError:
        return []


def _subtree(directory: Path) -> list[Path]:
    """``directory`` and every cgroup below it, deepest first."""
    found = [directory]
    for dirpath, dirnames, _files in os.walk(directory):
        found.extend(Path(dirpath) / d for d in dirnames)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _freeze(directory: Path, deadline: float) -> None:
    """Freeze the cgroup and its descendants; wait (bounded) until the kernel reports FROZEN."""
    state_file = directory / "freezer.state"
    try:
        state_file.write_text("FROZEN")
        while state_file.read_text().strip() != "FROZEN" and time.monotonic() < deadline:
            time.sleep(0.001)
    except FileNotFoundError:
        return


def _thaw(directory: Path) -> None:
    """Thaw top-down: a child cannot thaw while its parent is still frozen."""
    for sub in reversed(_subtree(directory)):
        try:
            (sub / "freezer.state").write_text("THAWED")
        except FileNotFoundError:
            continue


def thaw_cgroup(path: str, root: Path = CGROUP_ROOT) -> bool:
    """Thaw cgroup ``path`` (and below) if the freezer holds it; returns whether it was frozen.

    A frozen cgroup's processes never run again by themselves, so start-up thaws what a server
    killed in the middle of a freeze (a snapshot, a capture) left frozen.
    """
    rel = _rel(path)
    freezer = _hierarchy_of("freezer", root)
    if freezer is not None:
        try:
            frozen = (freezer / rel / "freezer.state").read_text().strip() != "THAWED"
        except FileNotFoundError:
            frozen = False
        if frozen:
            _thaw(freezer / rel)
        return frozen
    for hierarchy in unified_hierarchies(root) + ([root] if (root / "cgroup.controllers").exists() else []):
        control = hierarchy / rel / "cgroup.freeze"
        try:
            if control.read_text().strip() == "1":
                control.write_text("0")
                return True
        except FileNotFoundError:
            continue
    return False


def remove_cgroup(path: str, root: Path = CGROUP_ROOT) -> None:
    """Kill every process left in cgroup ``path`` (and below) and remove it from every v1 hierarchy.

    The freezer, when the cgroup exists there, is frozen first so nothing can fork while we kill,
    then thawed so the SIGKILLs are delivered. Without a freezer cgroup we SIGKILL ``cgroup.procs``
    until it reads empty. Both loops are bounded; a cgroup that cannot be emptied in time raises
    ``RuntimeFailure``. Missing cgroups are fine (idempotent).
    """
    rel = _rel(path)
    deadline = time.monotonic() + _KILL_DEADLINE_S
    present = [h / rel for h in _every_hierarchy(root) if (h / rel).is_dir()]
    if not present:
        return

    freezer = _hierarchy_of("freezer", root)
    frozen = freezer / rel if freezer is not None and (freezer / rel).is_dir() else None
    if frozen is not None:
        # bounded separately: a task stuck in D state never freezes, and we kill it anyway
        _freeze(frozen, min(deadline, time.monotonic() + 1.0))

    while True:
        pids = {pid for d in present for sub in _subtree(d) for pid in _read_pids(sub / "cgroup.procs")}
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if frozen is not None:
            _thaw(frozen)  # the SIGKILLs are delivered once the tasks run again
        if time.monotonic() > deadline:
            raise RuntimeFailure(
                f"removing cgroup {path}: processes {sorted(pids)} were still alive "
                f"{_KILL_DEADLINE_S:.0f} s after SIGKILL"
            )
        time.sleep(0.002)

    for directory in present:
        for sub in _subtree(directory):
            _rmdir_bounded(sub, deadline, path)


def _rmdir_bounded(directory: Path, deadline: float, path: str) -> None:
    """rmdir that retries EBUSY: exiting tasks leave the css a moment after cgroup.procs reads empty."""
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"removing cgroup {path}: rmdir {directory} failed: {exc.strerror}"
                ) from exc
            time.sleep(0.002)


def _memory_file(path: str, name: str, root: Path) -> Path | None:
    memory = _hierarchy_of("memory", root)
    return None if memory is None else memory / _rel(path) / name


def cgroup_memory_now(path: str, root: Path = CGROUP_ROOT) -> int | None:
    """Memory in use now in bytes, without page cache the kernel can drop at once (v1
    ``memory.usage_in_bytes`` less ``total_inactive_file``, as ``docker stats`` counts it)."""
    usage, stat = _memory_file(path, "memory.usage_in_bytes", root), _memory_file(path, "memory.stat", root)
    try:
        if usage is None or stat is None:
            return None
        total = int(usage.read_text())
        fields = dict(line.split(" ", 1) for line in stat.read_text().splitlines() if " " in line)
    except (FileNotFoundError, ValueError):
        return None
    return max(0, total - int(fields.get("total_inactive_file", "0")))


def cgroup_cpu_seconds(path: str, root: Path = CGROUP_ROOT) -> float | None:
    """CPU time the cgroup's processes used so far, in seconds (v1 ``cpuacct.usage``)."""
    cpuacct = _hierarchy_of("cpuacct", root)
    try:
        return None if cpuacct is None else int((cpuacct / _rel(path) / "cpuacct.usage").read_text()) / 1e9
    except (FileNotFoundError, ValueError):
        return None


def cgroup_memory_peak(path: str, root: Path = CGROUP_ROOT) -> int | None:
    """Peak memory use in bytes (v1 ``memory.max_usage_in_bytes``), None when there is no such cgroup."""
    file = _memory_file(path, "memory.max_usage_in_bytes", root)
    try:
        return None if file is None else int(file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def cgroup_oom_kills(path: str, root: Path = CGROUP_ROOT) -> int | None:
    """How many processes the OOM killer killed in this cgroup (``oom_kill`` in ``memory.oom_control``)."""
    file = _memory_file(path, "memory.oom_control", root)
    try:
        text = "" if file is None else file.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return None
