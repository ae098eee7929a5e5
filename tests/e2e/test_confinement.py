"""Attacks from inside a container shell: each one must stay inside it."""

from __future__ import annotations

from collections.abc import Callable

from shells.sdk import CommandResult, Shell


def _sh(shell: Shell, command: str, timeout_s: float = 60) -> CommandResult:
    return shell.commands.run(command, timeout=timeout_s)


def test_the_posture_inside_matches_the_profile(shell: Shell) -> None:
    status = _sh(shell, "cat /proc/self/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    assert int(fields["CapEff"], 16) & (1 << 21) == 0, "CAP_SYS_ADMIN must not be held"
    assert int(fields["CapBnd"], 16) & (1 << 13) == 0, "CAP_NET_RAW must not be held"
    uid_map = _sh(shell, "cat /proc/self/uid_map").stdout.split()
    assert uid_map[0] == "0" and int(uid_map[1]) >= 2**20, "root inside must map to an unprivileged host uid"


def test_host_kernel_surface_is_denied(shell: Shell) -> None:
    assert _sh(shell, "unshare -U true").exit_code != 0
    assert _sh(shell, "mount -t tmpfs t /mnt").exit_code != 0
    assert _sh(shell, "echo 1 > /proc/sysrq-trigger").exit_code != 0
    assert _sh(shell, "cat /proc/kcore | head -c1 | wc -c").stdout.strip() == "0"
    assert _sh(shell, "ls /sys | wc -l").stdout.strip() == "0", "/sys must not show the host"
    assert _sh(shell, "mknod /tmp/sda b 8 0").exit_code != 0
    probe = (
        "import ctypes; l = ctypes.CDLL(None, use_errno=True); "
        "r = l.syscall(321, 0, 0, 0); print(r, ctypes.get_errno())"
    )
    assert _sh(shell, f"python3 -c '{probe}'").stdout.split() == ["-1", "1"], "bpf() must be EPERM"


def test_sealed_network_has_no_working_interface_not_even_loopback(shell: Shell) -> None:
    code = (
        "import socket\n"
        "for addr in [('127.0.0.1', 80), ('1.1.1.1', 53), ('169.254.169.254', 80)]:\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    print(s.connect_ex(addr))\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    u.sendto(b'x', ('8.8.8.8', 53)); print('sent')\n"
        "except OSError as e:\n    print('blocked', e.errno)\n"
    )
    shell.files.write("/workspace/net.py", code)
    lines = _sh(shell, "python3 /workspace/net.py").stdout.split("\n")
    assert lines[:3] == ["101", "101", "101"], lines  # ENETUNREACH, at once
    assert lines[3].startswith("blocked"), lines


def test_a_fork_bomb_is_confined_to_its_shell(make_shell: Callable[..., Shell]) -> None:
    victim, bystander = make_shell(), make_shell()
    bomb = "bomb() { bomb | bomb & }; bomb; sleep 3; echo survived"
    out = _sh(victim, bomb, timeout_s=20)
    assert out.exit_code in (0, 137) or out.timed_out
    assert bystander.commands.run(["echo", "fine"]).stdout == "fine\n"
    victim.restart()
    assert victim.commands.run(["echo", "back"]).stdout == "back\n"


def test_a_memory_bomb_is_killed_inside_its_shell_and_the_shell_lives_on(shell: Shell) -> None:
    out = _sh(shell, "python3 -c 'b=[]\nwhile True: b.append(bytearray(64<<20))'", timeout_s=60)
    assert out.exit_code == 137, out
    assert shell.commands.run(["echo", "alive"]).stdout == "alive\n"


def test_the_shell_cannot_see_host_processes_or_files(shell: Shell) -> None:
    pids = _sh(shell, "ls /proc | grep -c '^[0-9]'").stdout.strip()
    assert int(pids) < 10, "a pid namespace shows only the shell's own processes"
    assert _sh(shell, "test -e /root/.pyenv || test -e /work").exit_code == 1
