"""The container shells' sudo client: the command lines it understands, and the agent's opt-in."""

from __future__ import annotations

import pytest

from shells.guest.agent import parse_args
from shells.guest.sudo import parse


def test_sudo_command_lines_become_requests() -> None:
    assert parse(["apt-get", "install", "-y", "x"])["argv"] == ["apt-get", "install", "-y", "x"]
    request = parse(["-nE", "-u", "nobody", "--", "-weird"])
    assert (request["user"], request["keep_env"], request["argv"]) == ("nobody", True, ["-weird"])
    assert parse(["--user=www", "id"])["user"] == "www"
    assert parse(["-unobody", "id"])["user"] == "nobody"
    assert parse(["-i"])["login"] is True and parse(["-s", "ls"])["shell"] is True


@pytest.mark.parametrize("argv", [[], ["-u"], ["-Z", "id"], ["-n"]])
def test_what_sudo_cannot_do_here_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(argv)


def test_only_a_socket_agent_may_serve_sudo() -> None:
    assert parse_args(["--listen-fd", "3"]) == ("--listen-fd", "3", False)
    assert parse_args(["--listen-fd", "3", "--serve-sudo"]) == ("--listen-fd", "3", True)
    with pytest.raises(SystemExit):
        parse_args(["--serial", "/dev/vport0p1", "--serve-sudo"])
