"""The README's commands, run as a user would run them."""

from __future__ import annotations

import os
import subprocess
import sys

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
