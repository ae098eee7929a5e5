"""The OCI runtime config (config.json) of one container shell. Pure: paths in, a dict out.

What the config promises, and why:
- every namespace, including a user namespace whose root maps to a per-shell block of host uids
  (the root filesystem is an idmapped mount, so files stay unshifted on disk);
- a network namespace made by the host (owned by the host's user namespace), so nothing inside can
  reconfigure it; in ``sealed`` mode even loopback is down;
- cgroup limits from the shape (memory with swap equal to memory, CPU quota, pids);
- a precompiled seccomp filter (``run.oci.seccomp_bpf_data``: crun 1.8 would otherwise compile the
  profile on every start, ~35 ms), ``noNewPrivileges``, a small capability set that only has
  meaning inside the user namespace, masked /proc paths, read-only /proc/sys, and an empty
  read-only /sys (a sysfs cannot be mounted for a netns the shell does not own, and crun's fallback
  would bind the host's own /sys);
- the agent (PID 1) runs from the host's agent runtime (``runtime/agent_runtime.py``) bound
  read-only at /.shells, through that runtime's own dynamic loader, so it needs nothing of the image
  (no python3, no libc);
- the agent serves the host on a listening socket the host made and passes as fd 3
  (``crun run --preserve-fds 1``): its path is in a host directory no shell sees, so nothing inside
  can put another socket in its place;
- nothing host-specific in /proc/self/mountinfo: the root filesystem and /workspace are idmapped
  mounts the host made ``nosuid,nodev`` (crun cannot remount an idmapped mount, so the flags it is
  asked for here would not take), and the agent runtime and resolv.conf come from the instance's own
  small tmpfs mounts, not from the host's root filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...domain.shapes import Shape

AGENT_DIR = "/.shells"
AGENT_LISTEN_FD = 3
"""The agent's listening socket: the first fd after stdio, as ``crun --preserve-fds 1`` passes it."""
HOSTNAME = "shells"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD_US = 100_000

# Only meaningful inside the shell's own user namespace; enough for apt, chown and su to work.
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
]

MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/proc/kallsyms",
    "/proc/sysrq-trigger",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"]


@dataclass(frozen=True)
class BundlePaths:
    rootfs: str  # the idmapped root filesystem mount
    workspace: str  # the idmapped /workspace mount
    agent_runtime: str  # the agent runtime's directory on the instance's runtime tmpfs
    netns: str  # the network namespace file
    caches: tuple[tuple[str, str], ...] = ()  # (idmapped host mount, directory inside): shared caches
    resolv_conf: str | None = None  # the shell's resolv.conf on the shared tmpfs (names the resolver)
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (host mount, path inside, read-only): buckets, volumes


def build_config(
    *,
    paths: BundlePaths,
    shape: Shape,
    agent_argv: list[str],
    uid_base: int,
    cgroup_path: str,
    seccomp_bpf_b64: str,
) -> dict[str, Any]:
    ids = [{"containerID": 0, "hostID": uid_base, "size": 65536}]
    nofile = 4096
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": agent_argv,
            "env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8", "HOME=/root"],
            "cwd": AGENT_DIR,
            "noNewPrivileges": True,
            "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), CAPABILITIES),
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "oomScoreAdj": 500,
        },
        "root": {"path": paths.rootfs, "readonly": False},
        "hostname": HOSTNAME,
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "tmpfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro", "size=4k"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", f"size={shape.tmpfs_mib}m"],
            },
            {
                "destination": "/workspace",
                "type": "bind",
                "source": paths.workspace,
                "options": ["rbind", "rw", "nosuid", "nodev"],
            },
            {
                "destination": AGENT_DIR,
                "type": "bind",
                "source": paths.agent_runtime,
                "options": ["rbind", "ro", "nosuid", "nodev"],
            },
            *(
                {
                    "destination": inside,
                    "type": "bind",
                    "source": source,
                    "options": ["rbind", "rw", "nosuid", "nodev"],
                }
                for source, inside in paths.caches
            ),
            *(
                [
                    {
                        "destination": "/etc/resolv.conf",
                        "type": "bind",
                        "source": paths.resolv_conf,
                        "options": ["bind", "ro", "nosuid", "nodev", "noexec"],
                    }
                ]
                if paths.resolv_conf
                else []
            ),
            *(
                {
                    "destination": inside,
                    "type": "bind",
                    "source": source,
                    "options": ["rbind", "ro" if read_only else "rw", "nosuid", "nodev"],
                }
                for source, inside, read_only in paths.mounts
            ),
        ],
        "annotations": {"run.oci.seccomp_bpf_data": seccomp_bpf_b64},
        "linux": {
            "uidMappings": ids,
            "gidMappings": ids,
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
                {"type": "user"},
                {"type": "network", "path": paths.netns},
            ],
            "cgroupsPath": cgroup_path,
            "resources": {
                "memory": {"limit": shape.memory_bytes, "swap": shape.memory_bytes},
                "cpu": {"quota": int(shape.vcpus * CPU_PERIOD_US), "period": CPU_PERIOD_US},
                "pids": {"limit": shape.pids_limit},
            },
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }
