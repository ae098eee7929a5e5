"""Our seccomp policy as data, compiled once to classic BPF with libseccomp (via ctypes).

crun 1.8.1 compiles an OCI ``linux.seccomp`` profile with libseccomp on every start (~35 ms). Given
the annotation ``run.oci.seccomp_bpf_data`` (base64 of the BPF program) it loads that instead, so we
compile once per policy content and cache the bytes.

The policy allows everything on the native architecture except the kernel attack surface a sandbox
never needs. libseccomp's generated filter kills any other architecture (the i386 ``int 0x80`` ABI)
and, on x86_64, any x32 syscall (numbers with bit 30 set), because neither is added to the filter.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from shells.domain.errors import RuntimeFailure

SECCOMP_BPF_ANNOTATION = "run.oci.seccomp_bpf_data"


class Op(StrEnum):
    """libseccomp comparison operators (enum scmp_compare)."""

    NE = "ne"
    LT = "lt"
    LE = "le"
    EQ = "eq"
    GE = "ge"
    GT = "gt"
    MASKED_EQ = "masked_eq"


_OP_CODES = {Op.NE: 1, Op.LT: 2, Op.LE: 3, Op.EQ: 4, Op.GE: 5, Op.GT: 6, Op.MASKED_EQ: 7}


@dataclass(frozen=True)
class Arg:
    """One comparison on syscall argument ``index``. For MASKED_EQ: ``(arg & mask) == value``."""

    index: int
    op: Op
    value: int
    mask: int = 0


@dataclass(frozen=True)
class Rule:
    """Return ``-errno`` from ``syscalls`` when every comparison in ``when`` holds (always if empty).

    Several rules on one syscall are OR'ed. libseccomp allows at most one comparison per argument
    index inside one rule.
    """

    syscalls: tuple[str, ...]
    error: int = errno.EPERM
    when: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Policy:
    """Default action ALLOW; each rule turns matching calls into an errno."""

    rules: tuple[Rule, ...] = ()


LOW32 = 0xFFFFFFFF
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
NAMESPACE_CLONE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    # In clone(2) bit 0x80 is part of the exit-signal byte; no valid signal (<= 64) sets it, so
    # denying it only turns an EINVAL into EPERM. clone3 (where it means CLONE_NEWTIME) is ENOSYS.
    "CLONE_NEWTIME": 0x00000080,
}
SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}
"""The address families a shell may create sockets of (gVisor's set). Every other one answers
EAFNOSUPPORT, as from a kernel built without it: ``AF_VSOCK`` is not network-namespaced (it reaches
the hypervisor and the host past every nft rule), and the rest (``AF_ALG``, ``AF_KEY``, ``AF_RDS``,
``AF_TIPC``, ``AF_CAN``, ...) are kernel surface a shell never needs, many autoloaded on first use.
``AF_PACKET`` stays so tools get the kernel's own EPERM (a shell has no ``CAP_NET_RAW`` in its netns)."""


def _personality_rules() -> tuple[Rule, ...]:
    """EPERM for every personality(2) persona except 0 (PER_LINUX) and 0xffffffff (query).

    One rule can compare an argument only once, so "x != 0 and x != 0xffffffff" is spelled as a
    union: a 32-bit value that is neither all zeros nor all ones has, cyclically, a 1 bit followed by
    a 0 bit; one MASKED_EQ rule per such bit pair (32 rules), plus GT for anything above 32 bits.
    """
    rules = [Rule(("personality",), when=(Arg(0, Op.GT, LOW32),))]
    for bit in range(32):
        one, zero = 1 << bit, 1 << ((bit + 1) % 32)
        rules.append(Rule(("personality",), when=(Arg(0, Op.MASKED_EQ, one, mask=one | zero),)))
    return tuple(rules)


def _socket_family_rules() -> tuple[Rule, ...]:
    """EAFNOSUPPORT from socket(2) and socketpair(2) for every family outside ``SOCKET_FAMILIES``.

    The kernel reads the family as a 32-bit int, so a value with high bits set is caught by the one
    ``GT`` rule above the largest allowed family (nobody passes such a value honestly); every family
    below it that is not allowed gets its own ``EQ`` rule.
    """
    allowed = set(SOCKET_FAMILIES.values())
    top = max(allowed)
    denied = [f for f in range(top) if f not in allowed]
    return tuple(
        Rule((call,), error=errno.EAFNOSUPPORT, when=(arg,))
        for call in ("socket", "socketpair")
        for arg in (Arg(0, Op.GT, top), *(Arg(0, Op.EQ, f) for f in denied))
    )


DEFAULT_POLICY = Policy(
    rules=(
        Rule(
            (
                # loading code into the kernel, tracing it, and the kernel's own plumbing
                "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
                "create_module", "get_kernel_syms", "query_module", "uselib", "nfsservctl",
                "iopl", "ioperm", "pciconfig_read", "pciconfig_write", "pciconfig_iobase",
                # kernel keyrings, io_uring (its own syscall surface bypasses this filter)
                "keyctl", "add_key", "request_key",
                "io_uring_setup", "io_uring_enter", "io_uring_register",
                # host-wide state: clocks, swap, accounting, quota, logs, reboot
                "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
                "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "reboot", "syslog",
                "vhangup", "ustat", "sysfs", "_sysctl", "fanotify_init",
                # file handles escape mount confinement; mounts and namespaces are the runtime's job
                "open_by_handle_at", "name_to_handle_at",
                "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount",
                "fspick", "mount_setattr", "setns", "unshare",
                # looking into other processes (or copying their fds: the agent's connections)
                "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
            ),
        ),
        # Terminal injection. The kernel compares the request as 32 bits, so compare only those:
        # a full 64-bit EQ is bypassed by setting high bits (CVE-2019-10063).
        Rule(("ioctl",), when=(Arg(1, Op.MASKED_EQ, TIOCSTI, mask=LOW32),)),
        Rule(("ioctl",), when=(Arg(1, Op.MASKED_EQ, TIOCLINUX, mask=LOW32),)),
        # No new namespaces through clone(2); clone3 passes its flags in memory that seccomp cannot
        # read, so it reports ENOSYS and glibc falls back to clone(2).
        *(Rule(("clone",), when=(Arg(0, Op.MASKED_EQ, f, mask=f),)) for f in NAMESPACE_CLONE_FLAGS.values()),
        Rule(("clone3",), error=errno.ENOSYS),
        *_personality_rules(),
        *_socket_family_rules(),
    )
)  # fmt: skip


# -- libseccomp through ctypes -----------------------------------------------------------------------

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1


def _scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0x0000FFFF)


class ScmpArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: {unsigned int arg; enum scmp_compare op; u64 datum_a; u64 datum_b}."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Lib:
    """The libseccomp functions we call, with their C signatures declared."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        self.init = lib.seccomp_init
        self.init.argtypes = [ctypes.c_uint32]
        self.init.restype = ctypes.c_void_p
        self.release = lib.seccomp_release
        self.release.argtypes = [ctypes.c_void_p]
        self.release.restype = None
        self.attr_set = lib.seccomp_attr_set
        self.attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        self.attr_set.restype = ctypes.c_int
        self.rule_add_array = lib.seccomp_rule_add_array
        self.rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(ScmpArgCmp),
        ]
        self.rule_add_array.restype = ctypes.c_int
        self.export_bpf = lib.seccomp_export_bpf
        self.export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.export_bpf.restype = ctypes.c_int
        self.resolve_name = lib.seccomp_syscall_resolve_name
        self.resolve_name.argtypes = [ctypes.c_char_p]
        self.resolve_name.restype = ctypes.c_int
        version = lib.seccomp_version
        version.argtypes = []
        version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        self.version = ".".join(str(v) for v in version().contents)


@functools.cache
def _libseccomp() -> _Lib:
    try:
        return _Lib()
    except OSError as exc:
        raise RuntimeFailure(f"loading libseccomp.so.2 failed: {exc}; install libseccomp2") from exc


def compile_bpf(policy: Policy = DEFAULT_POLICY) -> bytes:
    """Compile ``policy`` for the native architecture to a classic BPF program (8-byte instructions)."""
    lib = _libseccomp()
    ctx = lib.init(SCMP_ACT_ALLOW)
    if not ctx:
        raise RuntimeFailure("seccomp_init failed")
    try:
        # A binary tree of syscall numbers instead of a linear scan: every syscall pays for this.
        _check(lib.attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "seccomp_attr_set(CTL_OPTIMIZE)")
        for rule in policy.rules:
            cmps = (ScmpArgCmp * max(1, len(rule.when)))()
            for i, arg in enumerate(rule.when):
                a, b = (arg.mask, arg.value) if arg.op is Op.MASKED_EQ else (arg.value, 0)
                cmps[i] = ScmpArgCmp(arg.index, _OP_CODES[arg.op], a, b)
            for name in rule.syscalls:
                nr = lib.resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    raise RuntimeFailure(f"seccomp policy names an unknown syscall {name!r}")
                rc = lib.rule_add_array(ctx, _scmp_act_errno(rule.error), nr, len(rule.when), cmps)
                _check(rc, f"seccomp_rule_add({name})")
        fd = os.memfd_create("shells-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.export_bpf(ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.release(ctx)


def _check(rc: int, step: str) -> None:
    # libseccomp returns -errno; syscalls absent on this arch (e.g. pciconfig_*) are accepted and skipped.
    if rc < 0:
        raise RuntimeFailure(f"{step} failed: {os.strerror(-rc)}")


def policy_hash(policy: Policy = DEFAULT_POLICY) -> str:
    """Content hash of the policy plus the libseccomp version that compiles it."""
    doc = json.dumps(
        {"policy": asdict(policy), "libseccomp": _libseccomp().version, "machine": os.uname().machine},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(doc.encode()).hexdigest()


def cached_bpf_b64(cache_dir: Path, policy: Policy = DEFAULT_POLICY) -> str:
    """Base64 BPF for the ``run.oci.seccomp_bpf_data`` annotation, compiled at most once per policy.

    The file ``<cache_dir>/seccomp-<hash>.bpf`` is written atomically (temp file + rename), so
    concurrent callers at worst compile twice and agree on the content.
    """
    cache_dir = Path(cache_dir)
    file = cache_dir / f"seccomp-{policy_hash(policy)[:32]}.bpf"
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        data = compile_bpf(policy)
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".seccomp-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(tmp).replace(file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return base64.b64encode(data).decode()
