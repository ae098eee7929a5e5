"""``shells secret …`` and ``shells create --secret``, run as a user would: the value goes in on
standard input and no command prints it back."""

from __future__ import annotations

import secrets

from .harness import ServerProcess
from .test_cli import _shells


def test_secrets_from_the_command_line(server: ServerProcess) -> None:
    name = "CLI_" + secrets.token_hex(4).upper()
    value = "real" + secrets.token_hex(16)
    created = _shells(server, "secret", "create", name, "--host", "api.example.org", stdin=value + "\n")
    assert created.returncode == 0, created.stderr
    assert _shells(server, "secret", "create", "CLI_NOHOST", stdin=value).returncode == 2
    try:
        rotated = _shells(server, "secret", "update", name, "--value", stdin="real" + secrets.token_hex(16))
        assert rotated.returncode == 0 and "version 2" in rotated.stdout, rotated.stderr
        shown = [_shells(server, "secret", *args) for args in (["ls"], ["ls", "--json"], ["get", name])]
        assert all(r.returncode == 0 and name in r.stdout and value not in r.stdout for r in shown)
        shell = _shells(server, "create", "--language", "python", "--network", "internet", "--secret", name)
        assert shell.returncode == 0, shell.stderr
        sid = shell.stdout.strip()
        try:
            env = _shells(server, "exec", sid, "--", "printenv", name)
            assert env.stdout.startswith("shells-secret-") and value not in env.stdout
        finally:
            _shells(server, "rm", sid)
        sealed = _shells(server, "create", "--language", "python", "--secret", name)
        assert sealed.returncode == 2 and "internet" in sealed.stderr
    finally:
        assert _shells(server, "secret", "rm", name).returncode == 0
