"""The compiled policy, loaded for real into child processes (prctl NO_NEW_PRIVS + seccomp(2))."""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import seccomp
from shells.runtime.host.seccomp import Arg, Op, Policy, Rule

# Runs in a fresh interpreter: loads the BPF from argv[1] ("-" = none), then probes syscalls with
# raw syscall(2) so nothing in between (glibc wrappers, Python) changes the arguments.
PROBE = r"""
import ctypes, errno, json, mmap, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

def load(path):
    data = open(path, "rb").read()
    buf = ctypes.create_string_buffer(data, len(data))
    prog = SockFprog(len(data) // 8, ctypes.addressof(buf))
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert libc.syscall(317, 1, 0, ctypes.byref(prog)) == 0, ctypes.get_errno()  # SECCOMP_SET_MODE_FILTER
    load.buf = buf

def sc(*args):
    rc = libc.syscall(*[ctypes.c_long(a) for a in args])
    return "OK" if rc >= 0 else errno.errorcode[ctypes.get_errno()]

if sys.argv[1] != "-":
    load(sys.argv[1])
what = sys.argv[2]
ch = ctypes.c_char(b"x")
if what == "probe":
    out = {
        "bpf": sc(321, 0, 0, 0),
        "clone3": sc(435, 0, 0),
        "tiocsti": sc(16, 0, 0x5412, ctypes.addressof(ch)),
        "tiocsti_high_bits": sc(16, 0, 0x100005412, ctypes.addressof(ch)),
        "tioclinux_high_bits": sc(16, 0, 0xFFFFFFFF0000541C, ctypes.addressof(ch)),
        "fionread": sc(16, 0, 0x541B, ctypes.addressof(ctypes.c_int())),
        "personality_query": sc(135, 0xFFFFFFFF),
        "personality_linux32": sc(135, 0x0008),
        "personality_high_bits": sc(135, 0x100000000),
        "keyctl": sc(250, 0, 0, 0, 0, 0),
        "io_uring_setup": sc(425, 1, 0),
        "getpid": sc(39),
        "pidfd_getfd": sc(438, -1, 0, 0),
        "socket_unix": sc(41, 1, 1, 0),
        "socket_inet": sc(41, 2, 2, 0),
        "socket_inet6": sc(41, 10, 2, 0),
        "socket_netlink": sc(41, 16, 3, 0),
        "socket_vsock": sc(41, 40, 1, 0),
        "socket_vsock_high_bits": sc(41, 0x100000028, 1, 0),
        "socket_alg": sc(41, 38, 5, 0),
        "socket_key": sc(41, 15, 3, 2),
        "socket_beyond_every_family": sc(41, 0x7FFFFFFF, 1, 0),
        "socketpair_unix": sc(53, 1, 1, 0, ctypes.addressof((ctypes.c_int * 2)())),
        "socketpair_vsock": sc(53, 40, 1, 0, ctypes.addressof((ctypes.c_int * 2)())),
    }
    unshare = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
    out["unshare_cli"] = [unshare.returncode, unshare.stderr.strip()]
    echo = subprocess.run(["sh", "-c", "echo hi | cat"], capture_output=True, text=True)
    out["echo"] = echo.stdout
    namespaces = {"clone_newuser": 0x10000000, "clone_newnet": 0x40000000, "clone_newns": 0x20000}
    for name, flags in namespaces.items():
        rc = libc.syscall(ctypes.c_long(56), ctypes.c_long(flags | 17), None, None, None, None)
        if rc == 0:  # we are an unexpected child: leave at once
            libc._exit(0)
        out[name] = "OK" if rc > 0 else errno.errorcode[ctypes.get_errno()]
    print(json.dumps(out))
elif what == "x32":
    libc.syscall(ctypes.c_long(0x40000000 | 39))  # x32 getpid
elif what == "int80":
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"  # mov eax, 20 (i386 getpid); int 0x80; ret
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
"""


def _run(bpf: Path | None, what: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, str(bpf) if bpf else "-", what],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def bpf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seccomp") / "policy.bpf"
    path.write_bytes(seccomp.compile_bpf())
    return path


@pytest.fixture(scope="module")
def confined(bpf_file: Path) -> dict[str, Any]:
    proc = _run(bpf_file, "probe")
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_the_compiled_filter_is_a_whole_number_of_bpf_instructions() -> None:
    program = seccomp.compile_bpf()
    assert len(program) % 8 == 0
    assert 0 < len(program) // 8 < 4096


def test_unshare_of_a_user_namespace_fails_with_eperm(confined: dict[str, Any]) -> None:
    code, stderr = confined["unshare_cli"]
    assert code != 0
    assert "Operation not permitted" in stderr


def test_clone_with_any_namespace_flag_fails_with_eperm(confined: dict[str, Any]) -> None:
    assert confined["clone_newuser"] == "EPERM"
    assert confined["clone_newnet"] == "EPERM"
    assert confined["clone_newns"] == "EPERM"


def test_tiocsti_is_refused_even_with_high_bits_set_in_the_request(confined: dict[str, Any]) -> None:
    assert confined["tiocsti"] == "EPERM"
    assert confined["tiocsti_high_bits"] == "EPERM"
    assert confined["tioclinux_high_bits"] == "EPERM"
    assert confined["fionread"] == "ENOTTY"  # other ioctls reach the kernel


def test_fork_exec_and_echo_still_work(confined: dict[str, Any]) -> None:
    assert confined["echo"] == "hi\n"
    assert confined["getpid"] == "OK"


def test_clone3_reports_enosys_so_libc_falls_back_to_clone(confined: dict[str, Any]) -> None:
    assert confined["clone3"] == "ENOSYS"


def test_bpf_keyctl_and_io_uring_fail_with_eperm(confined: dict[str, Any]) -> None:
    assert confined["bpf"] == "EPERM"
    assert confined["keyctl"] == "EPERM"
    assert confined["io_uring_setup"] == "EPERM"


def test_pidfd_getfd_fails_with_eperm(confined: dict[str, Any]) -> None:
    assert confined["pidfd_getfd"] == "EPERM"


def test_only_unix_inet_netlink_and_packet_sockets_can_be_made(confined: dict[str, Any]) -> None:
    for family in ("unix", "inet", "inet6", "netlink"):
        assert confined[f"socket_{family}"] == "OK", family
    assert confined["socketpair_unix"] == "OK"
    for probe in ("vsock", "vsock_high_bits", "alg", "key", "beyond_every_family"):
        assert confined[f"socket_{probe}"] == "EAFNOSUPPORT", probe
    assert confined["socketpair_vsock"] == "EAFNOSUPPORT"


def test_personality_can_be_queried_but_not_changed(confined: dict[str, Any]) -> None:
    assert confined["personality_query"] == "OK"
    assert confined["personality_linux32"] == "EPERM"
    assert confined["personality_high_bits"] == "EPERM"


def test_without_the_filter_the_same_probes_reach_the_kernel() -> None:
    proc = _run(None, "probe")
    assert proc.returncode == 0, proc.stderr
    free = json.loads(proc.stdout)
    assert free["bpf"] != "EPERM"
    assert free["clone3"] != "ENOSYS"
    assert free["tiocsti_high_bits"] == "ENOTTY"
    assert free["pidfd_getfd"] == "EBADF"
    assert free["socket_vsock"] == "OK"
    assert free["socket_vsock_high_bits"] == "OK"  # the kernel reads the family as 32 bits


@pytest.mark.parametrize("abi", ["x32", "int80"])
def test_foreign_syscall_abis_kill_the_process(bpf_file: Path, abi: str) -> None:
    proc = _run(bpf_file, abi)
    assert proc.returncode == -signal.SIGSYS, proc.stderr


def test_cached_bpf_is_compiled_once_per_policy_content(tmp_path: Path) -> None:
    first = seccomp.cached_bpf_b64(tmp_path)
    (cached,) = tmp_path.glob("seccomp-*.bpf")
    stamp = cached.stat().st_mtime_ns
    assert seccomp.cached_bpf_b64(tmp_path) == first
    assert cached.stat().st_mtime_ns == stamp
    assert base64.b64decode(first) == seccomp.compile_bpf()

    other = Policy(rules=(Rule(("acct",), error=errno.EACCES),))
    assert seccomp.cached_bpf_b64(tmp_path, other) != first
    assert len(list(tmp_path.glob("seccomp-*.bpf"))) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_policy_naming_an_unknown_syscall_is_rejected() -> None:
    with pytest.raises(RuntimeFailure, match="unknown syscall"):
        seccomp.compile_bpf(Policy(rules=(Rule(("not_a_syscall",)),)))


def test_two_comparisons_on_one_argument_in_one_rule_are_rejected() -> None:
    rule = Rule(("personality",), when=(Arg(0, Op.NE, 0), Arg(0, Op.NE, 1)))
    with pytest.raises(RuntimeFailure, match="seccomp_rule_add"):
        seccomp.compile_bpf(Policy(rules=(rule,)))


def test_the_policy_has_no_duplicate_syscall_in_its_unconditional_rules() -> None:
    names = [n for r in seccomp.DEFAULT_POLICY.rules if not r.when for n in r.syscalls]
    assert len(names) == len(set(names))
    assert "mbind" not in names
    assert os.uname().machine == "x86_64"
