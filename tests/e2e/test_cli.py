"""The README's commands, run as a user would run them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path

from .harness import ServerProcess


def _shells(server: ServerProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token}
    return subprocess.run(
        [sys.executable, "-m", "shells.cli.main", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_the_readme_walkthrough_works_from_the_command_line(server: ServerProcess) -> None:
    created = _shells(server, "create", "--language", "python", "--runtime", "container")
    assert created.returncode == 0, created.stderr
    sid = created.stdout.strip()
    assert sid.startswith("sh_")
    try:
        run = _shells(server, "exec", sid, "--", "python3", "-c", "print(6*7)")
        assert (run.returncode, run.stdout) == (0, "42\n")
        failing = _shells(server, "exec", sid, "--", "sh", "-c", "exit 5")
        assert failing.returncode == 5
        listing = _shells(server, "ls")
        assert listing.returncode == 0
        header, *rows = listing.stdout.splitlines()
        assert header.split() == [
            "ID",
            "NAME",
            "STATE",
            "RUNTIME",
            "LANGUAGE",
            "NETWORK",
            "SHAPE",
            "REGION",
            "AGE",
        ]
        assert any(r.startswith(sid) and "running" in r and "sealed" in r for r in rows)
        for capability in ("snapshot", "restart", "stop", "start", "reinstall_os", "wipe_state"):
            act = _shells(server, "action", sid, capability)
            assert act.returncode == 0, (capability, act.stderr)
        logs = _shells(server, "action", sid, "logs")
        assert "shells-agent ready" in logs.stdout
        full = _shells(server, "create", "--language", "bash", "--json")
        assert '"state": "running"' in full.stdout
        other = full.stdout.split('"id": "')[1].split('"')[0]
        assert _shells(server, "rm", other).returncode == 0
    finally:
        removed = _shells(server, "rm", sid)
    assert removed.returncode == 0
    bad = _shells(server, "create", "--language", "cobol")
    assert bad.returncode == 2 and "invalid_request" in bad.stderr


def test_exec_streams_and_run_cp_and_typed_errors_work_from_the_command_line(
    server: ServerProcess, tmp_path: Path
) -> None:
    sid = _shells(server, "create", "--language", "python", "--label", "via=cli").stdout.strip()
    try:
        streamed = _shells(server, "exec", sid, "--", "sh", "-c", "echo out; echo err >&2; exit 4")
        assert (streamed.returncode, streamed.stdout, streamed.stderr) == (4, "out\n", "err\n")
        piped = _shells(server, "exec", sid, "--stdin", "--", "wc", "-c", stdin="12345")
        assert piped.stdout.strip() == "5"
        slow = _shells(server, "exec", sid, "--timeout", "0.5", "--", "sleep", "30")
        assert slow.returncode == 137 and "timed out" in slow.stderr
        code = tmp_path / "hello.py"
        code.write_text("import sys\nprint('from a file')\nsys.exit(3)\n")
        ran = _shells(server, "run", sid, str(code))
        assert (ran.returncode, ran.stdout) == (3, "from a file\n")
        assert _shells(server, "run", sid, "--language", "bash", "-", stdin="echo $((6*7))").stdout == "42\n"
        local = tmp_path / "data.bin"
        local.write_bytes(bytes(range(256)) * 1000)
        assert _shells(server, "cp", str(local), f"{sid}:/workspace/data.bin").returncode == 0
        back = tmp_path / "back.bin"
        assert _shells(server, "cp", f"{sid}:/workspace/data.bin", str(back)).returncode == 0
        assert back.read_bytes() == local.read_bytes()
        paused = _shells(server, "action", sid, "pause")
        assert paused.returncode == 2 and "action_not_supported" in paused.stderr
        snap = _shells(server, "action", sid, "snapshot", "--name", "cli")
        assert snap.stdout.startswith("snap_")
        listed = json.loads(_shells(server, "ls", "--label", "via=cli", "--json").stdout)
        assert [s["id"] for s in listed] == [sid]
        events = _shells(server, "events", sid).stdout
        assert "exec" in events and "snapshot" in events
    finally:
        _shells(server, "rm", sid)
    missing = _shells(server, "get", sid)
    assert missing.returncode == 2 and "shell_not_found" in missing.stderr


SPEC = """name = "{name}"
parent = "base:1"
commands = ["true"]

[[files]]
path = "/etc/cli-test.conf"
source = "conf/cli-test.conf"
"""


def _on_a_terminal(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal; return (exit code, stdout, what the terminal got)."""
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token, "COLUMNS": "100"}
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shells.cli.main", *args], env=env, stdout=subprocess.PIPE, stderr=secondary
    )
    os.close(secondary)
    screen = bytearray()
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=120), out, screen.decode(errors="replace")


def test_template_commands_inline_local_files_and_show_progress_on_a_terminal(
    server: ServerProcess, tmp_path: Path
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}:1"
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "cli-test.conf").write_text("inlined = true\n")
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(name=name))
    code, out, screen = _on_a_terminal(server, "template", "build", str(spec))
    assert (code, out) == (0, f"{name}\n"), screen
    assert "\r[" in screen and "\x1b[K" in screen and "done" in screen
    again = _shells(server, "template", "build", str(spec))
    assert again.stdout == f"{name}\n" and "\r" not in again.stderr
    listing = _shells(server, "template", "ls").stdout.splitlines()
    assert listing[0].split() == ["NAME", "KIND", "STATUS", "SIZE", "PARENT", "AGE"]
    assert any(line.startswith(name) for line in listing[1:])
    assert json.loads(_shells(server, "template", "get", name).stdout)["name"] == name
    sid = _shells(server, "create", "--template", name).stdout.strip()
    try:
        conf = _shells(server, "exec", sid, "--", "cat", "/etc/cli-test.conf")
        assert conf.stdout == "inlined = true\n"
        saved = f"cli-saved-{uuid.uuid4().hex[:8]}:1"
        assert _shells(server, "template", "save", sid, saved).stdout == f"{saved}\n"
    finally:
        _shells(server, "rm", sid)
    assert _shells(server, "template", "rm", saved, name).returncode == 0
    gone = _shells(server, "template", "get", name)
    assert gone.returncode == 2 and "template_not_found" in gone.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x:1"\nparent = "base:1"\ncolour = "red"\n')
    refused = _shells(server, "template", "build", str(bad))
    assert (
        refused.returncode == 2 and "invalid_template_spec" in refused.stderr and "colour" in refused.stderr
    )


def test_network_port_and_private_network_commands(server: ServerProcess) -> None:
    net = f"cli{uuid.uuid4().hex[:8]}"
    created = _shells(server, "network", "create", net)
    assert created.returncode == 0 and created.stdout.startswith(f"{net}  10.")
    sid = _shells(server, "create", "--network", "localhost", "--net", net).stdout.strip()
    other = _shells(server, "create", "--allow", "example.org:443").stdout.strip()
    try:
        shown = _shells(server, "net", sid).stdout.splitlines()
        assert shown[0] == "mode: localhost" and f"networks: {net}" in shown
        changed = _shells(server, "net", other, "--mode", "internet", "--allow", "pypi.org:443").stdout
        assert changed.splitlines()[:2] == ["mode: internet", "allow: pypi.org:443"]
        assert _shells(server, "network", "attach", net, other).returncode == 0
        listing = _shells(server, "network", "ls").stdout.splitlines()
        assert listing[0].split() == ["NAME", "CIDR", "SHELLS", "AGE"]
        assert any(line.split()[:1] == [net] and line.split()[2] == "2" for line in listing[1:])
        busy = _shells(server, "network", "rm", net)
        assert busy.returncode == 2 and "network_in_use" in busy.stderr
        assert _shells(server, "network", "detach", net, other).returncode == 0
        exposed = _shells(server, "port", sid, "expose", "8000").stdout.splitlines()
        assert exposed[0].startswith("http") and exposed[1].startswith("token: ")
        assert _shells(server, "port", sid, "expose", "8001", "--public").stdout.count("\n") == 1
        ports = _shells(server, "port", sid, "ls").stdout.splitlines()
        assert [line.split()[0] for line in ports] == ["PORT", "8000", "8001"]
        assert _shells(server, "port", sid, "close", "8000").returncode == 0
        closed_twice = _shells(server, "port", sid, "close", "8000")
        assert closed_twice.returncode == 2 and "port_not_exposed" in closed_twice.stderr
    finally:
        _shells(server, "rm", sid, other)
    assert _shells(server, "network", "rm", net).returncode == 0


def test_usage_pricing_and_billing_commands(server: ServerProcess) -> None:
    created = _shells(server, "create", "--language", "bash")
    assert created.returncode == 0, created.stderr
    sid = created.stdout.strip()
    assert _shells(server, "action", sid, "stop").returncode == 0
    usage = _shells(server, "usage", "--by", "class")
    assert usage.returncode == 0, usage.stderr
    lines = usage.stdout.splitlines()
    assert lines[1].split() == ["CLASS", "HOURS", "VCPU-HOURS", "GIB-HOURS", "COST", "USD"]
    assert any(line.startswith("container ") for line in lines)
    assert any("█" in line and line.startswith("20") for line in lines)  # the per-day chart
    assert lines[-1].startswith("this month: $")
    csv_out = _shells(server, "usage", "--by", "shell", "--csv")
    assert csv_out.stdout.splitlines()[0] == "shell,seconds,vcpu_seconds,gib_seconds,cost_usd"
    assert any(row.startswith(f"{sid},") for row in csv_out.stdout.splitlines())
    pricing = _shells(server, "pricing")
    assert pricing.returncode == 0, pricing.stderr
    rows = {line.split()[0]: line.split()[1:] for line in pricing.stdout.splitlines() if line.strip()}
    assert rows["SHAPE"] == ["VCPUS", "MEMORY", "MIB", "WASM", "$/H", "CONTAINER", "$/H", "MICROVM", "$/H"]
    assert rows["s-2vcpu-2gb"] == ["2", "2048", "0.033300", "0.066600", "0.133200"]
    billing = _shells(server, "billing", "default", "--budget", "1000")
    assert billing.returncode == 0 and "budget $1000" in billing.stdout, billing.stderr
    assert "budget none" in _shells(server, "billing", "default", "--budget", "none").stdout
    bad = _shells(server, "billing", "default", "--budget", "-3")
    assert (bad.returncode, bad.stderr.split(":")[1].strip()) == (2, "invalid_request")
    assert _shells(server, "rm", sid).returncode == 0
