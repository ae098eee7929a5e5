"""Processes that outlive the call that started them, through Shells' own SDK (async and sync):
start, attach from then on, stdin after the start, close-stdin, list, signals, users, bad input."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shells import AsyncShell, AsyncShells, Shells
from shells.sdk import CommandExit, CommandOutput, InvalidRequest, ProcessNotFound

from .harness import ServerProcess, running_server


@pytest.fixture
async def box(server: ServerProcess) -> AsyncIterator[AsyncShell]:
    async with AsyncShells(server.url, server.token) as client, await client.create("python") as shell:
        yield shell


@pytest.mark.anyio
async def test_a_process_runs_on_takes_stdin_later_and_is_attached_from_then_on(box: AsyncShell) -> None:
    cat = await box.processes.start("cat; echo done", stdin=True, tag="cat", user="nobody")
    assert cat.tag == "cat" and cat.user == "nobody" and cat.stdin_open
    assert [p.pid for p in await box.processes.list()] == [cat.pid]
    async with box.processes.attach(cat.pid) as events:
        await box.processes.send_stdin(cat.pid, "hello\n")
        await box.processes.close_stdin(cat.pid)
        seen = [e async for e in events]
    output = "".join(e.data for e in seen if isinstance(e, CommandOutput))
    assert output == "hello\ndone\n" and isinstance(seen[-1], CommandExit) and seen[-1].exit_code == 0
    who = await box.processes.start("id -un > /tmp/who")
    for _ in range(50):
        if not await box.processes.list():
            break
        time.sleep(0.1)
    assert (await box.files.read("/tmp/who")) == b"root\n" and who.user is None
    with pytest.raises(InvalidRequest):
        await box.processes.start("true", user="no-such-user")


def test_a_process_is_signalled_and_gone_from_the_list(server: ServerProcess) -> None:
    with Shells(server.url, server.token) as client, client.create("python") as shell:
        sleeper = shell.processes.start(["sleep", "300"], tag="nap")
        with shell.processes.attach(sleeper.pid) as events:
            shell.processes.signal(sleeper.pid, "KILL")
            end = list(events)[-1]
        assert isinstance(end, CommandExit) and end.signal == 9
        assert shell.processes.list() == []
        with pytest.raises(ProcessNotFound):
            shell.processes.signal(sleeper.pid)
        with pytest.raises(ProcessNotFound):
            shell.processes.send_stdin(sleeper.pid, "x")
        other = shell.processes.start(["sleep", "300"])
        with pytest.raises(InvalidRequest):
            shell.processes.signal(other.pid, "USR1")
        with pytest.raises(InvalidRequest):  # no stdin was asked for
            shell.processes.send_stdin(other.pid, "x")
        shell.processes.signal(other.pid)


def test_processes_outlive_a_server_restart(data_root: Path) -> None:
    """The agent keeps them; the new server finds them, re-attaches and signals them."""
    with running_server(data_root / "processes-restart", warm_pool=0) as server:
        with server.client() as client:
            shell = client.create("python")
            ticker = shell.processes.start("while true; do echo tick; sleep 0.2; done", tag="ticker")
            cat = shell.processes.start("cat", stdin=True, tag="cat")
        server.stop()
        server.start()
        with server.client() as client:
            shell = client.get(shell.id)
            assert {(p.pid, p.tag) for p in shell.processes.list()} == {
                (ticker.pid, "ticker"),
                (cat.pid, "cat"),
            }
            with shell.processes.attach(cat.pid) as events:
                shell.processes.send_stdin(cat.pid, "after the restart\n")
                shell.processes.close_stdin(cat.pid)
                seen = list(events)
            assert [e.data for e in seen if isinstance(e, CommandOutput)] == ["after the restart\n"]
            with shell.processes.attach(ticker.pid) as events:
                assert any(isinstance(e, CommandOutput) for _, e in zip(range(3), events, strict=False))
            shell.processes.signal(ticker.pid, "KILL")
            for _ in range(50):
                if not shell.processes.list():
                    break
                time.sleep(0.1)
            assert shell.processes.list() == []
            shell.kill()
