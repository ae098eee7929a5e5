"""The sync SDK and the CLI on the fake node, in-process (the instance runs on a portal's loop)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

from shells.cli import shell_commands, template_commands
from shells.cli.main import main as shells_cli
from shells.domain.errors import ShellNotFound

from ..support.inprocess import BlockingInstance


def test_the_sync_sdk_creates_runs_writes_pauses_forks_and_deletes(blocking: BlockingInstance) -> None:
    with blocking.client() as client:
        shell = client.create("python")
        assert shell.commands.run(["printf", "%s", "a b"]).stdout == "a b"
        shell.files.write("/workspace/n.txt", "1")
        shell.pause()
        (child,) = shell.fork(1)
        assert child.files.read_text("/workspace/n.txt") == "1"
        shell.resume()
        assert shell.kill() and child.kill()
        with pytest.raises(ShellNotFound):
            client.get(shell.id)


def cli(blocking: BlockingInstance, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    """Run ``shells ARGV`` against the instance; its exit code, stdout and stderr."""
    for module in (shell_commands, template_commands):  # each imported ``connect`` by name
        monkeypatch.setattr(module, "connect", lambda: blocking.client(door="cli"))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = shells_cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_create_with_a_preset_not_built_yet_builds_it_with_progress_then_creates(
    blocking: BlockingInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(blocking, monkeypatch, "create", "--language", "node")
    assert code == 0, err
    assert out.strip().startswith("sh_")
    assert "node:1 is not built on this server yet; building it now" in err
    assert blocking.instance.node.builds == ["node:1"]
    code, out, err = cli(blocking, monkeypatch, "create", "--language", "node")  # built: no second build
    assert code == 0 and "building" not in err and blocking.instance.node.builds == ["node:1"]


def test_template_build_all_builds_the_presets_and_devbox(
    blocking: BlockingInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(blocking, monkeypatch, "template", "build", "--all")
    assert code == 0, err
    assert set(out.split()) == {"base:1", "python:1", "node:1", "go:1", "rust:1", "devbox:1"}
    assert "devbox:1" in blocking.instance.node.builds
