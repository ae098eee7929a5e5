"""The agent's terminal mode (exec with ``"pty"``), driven through the real client as the terminal door
drives it: keystrokes in, screen out, window changes, job control, exit and clean-up."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shells.domain.execution import ExecExit
from shells.domain.terminal import TerminalSpec
from shells.runtime.agent_client import AgentClient, AgentTerminal

from .test_agent import WAIT_S, Agent, raw, running_agent, wait_dead

SH = ("/bin/sh",)


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    with running_agent() as running:
        yield running
        assert running.process.poll() is None, "the agent died during the tests"


@pytest.fixture
def client(agent: Agent) -> AgentClient:
    return agent.client()


def terminal_spec(**kwargs: object) -> TerminalSpec:
    defaults: dict[str, object] = {"argv": SH, "cwd": "/tmp", "env": {"PS1": "$ "}, "timeout_s": 60.0}
    return TerminalSpec(**(defaults | kwargs))  # type: ignore[arg-type]


async def read_until(term: AgentTerminal, needle: bytes) -> bytes:
    """Screen output up to and including ``needle`` (fails after WAIT_S)."""
    screen = b""
    try:
        async with asyncio.timeout(WAIT_S):
            while needle not in screen:
                item = await term.read()
                assert not isinstance(item, ExecExit), f"exited early: {item}, screen {screen!r}"
                screen += item
    except TimeoutError:
        raise AssertionError(f"no {needle!r} on the screen: {screen!r}") from None
    return screen


async def read_exit(term: AgentTerminal) -> ExecExit:
    async with asyncio.timeout(WAIT_S):
        while not isinstance(item := await term.read(), ExecExit):
            pass
    return item


@pytest.fixture
async def sh(client: AgentClient) -> AsyncIterator[AgentTerminal]:
    async with client.terminal(terminal_spec()) as term:
        await read_until(term, b"$ ")
        yield term


@pytest.mark.anyio
async def test_keystrokes_in_and_the_screen_out(sh: AgentTerminal) -> None:
    await sh.write(b"echo $((6*7)); [ -t 0 ] && [ -t 1 ] && echo on-a-t''ty\n")
    screen = await read_until(sh, b"on-a-tty\r\n")
    assert b"42\r\n" in screen  # the terminal's line discipline turns \n into \r\n: it is a real pty
    await sh.write(b"exit 3\n")
    assert (await read_exit(sh)).exit_code == 3


@pytest.mark.anyio
async def test_the_window_size_is_set_and_changes_signal_the_process(
    client: AgentClient, tmp_path: Path
) -> None:
    """The foreground job (here a Python that reports SIGWINCH) learns of a resize and sees the new size."""
    watcher = tmp_path / "watch.py"
    watcher.write_text(
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGWINCH])\n"
        "print('watching', *os.get_terminal_size(0), flush=True)\n"
        "while signal.sigwait([signal.SIGWINCH]):\n"
        "    print('size', *os.get_terminal_size(0), flush=True)\n"
    )
    async with client.terminal(terminal_spec(cols=100, rows=30)) as term:
        await read_until(term, b"$ ")
        await term.write(f"{sys.executable} {watcher}\n".encode())
        await read_until(term, b"watching 100 30\r\n")
        await term.resize(120, 40)
        await read_until(term, b"size 120 40\r\n")
        await term.write(b"\x03")  # Ctrl-C also flushes what was typed ahead: wait for the prompt
        await read_until(term, b"$ ")
        await term.write(b"stty size\n")
        await read_until(term, b"40 120\r\n")


@pytest.mark.anyio
async def test_it_is_the_controlling_terminal_so_ctrl_c_interrupts(sh: AgentTerminal) -> None:
    await sh.write(b"sleep 60; echo fin''ished\n")
    await asyncio.sleep(0.2)
    await sh.write(b"\x03")
    screen = await read_until(sh, b"$ ")
    await sh.write(b"echo interrupted\n")
    screen += await read_until(sh, b"interrupted\r\n")
    assert b"finished" not in screen


@pytest.mark.anyio
async def test_ctrl_d_at_an_empty_prompt_ends_the_shell(sh: AgentTerminal) -> None:
    await sh.write(b"\x04")
    assert (await read_exit(sh)).exit_code == 0


@pytest.mark.anyio
async def test_leaving_the_terminal_kills_what_runs_in_it(agent: Agent, client: AgentClient) -> None:
    async with client.terminal(terminal_spec()) as term:
        await read_until(term, b"$ ")
        await term.write(b"sleep 60 & echo b''g=$!\n")
        screen = await read_until(term, b"\r\n$ ")
        background = int(screen.split(b"bg=")[1].split(b"\r\n")[0])
    wait_dead(background)
    assert (await client.ping())["pid"] == agent.pid


@pytest.mark.parametrize(
    ("pty", "reason"),
    [
        ({"cols": 0, "rows": 24}, "from 1 to"),
        ({"cols": 80, "rows": 5000}, "from 1 to"),
        ({"cols": "80", "rows": 24}, "must be an integer"),
        ([80, 24], "must be an object"),
    ],
)
def test_bad_window_sizes_are_refused(agent: Agent, pty: object, reason: str) -> None:
    with raw(agent) as connection:
        connection.control(1, {"op": "exec", "argv": list(SH), "cwd": "/", "pty": pty})
        _, reply = connection.final(1)
        assert (reply["op"], reply["code"]) == ("error", "invalid_request")
        assert reason in str(reply["message"])


def test_resize_is_only_for_terminals(agent: Agent) -> None:
    """A resize on a plain exec is a second open of its channel: the agent drops the connection."""
    with raw(agent) as connection:
        connection.control(1, {"op": "exec", "argv": ["sh", "-c", "echo $$; exec sleep 60"], "cwd": "/"})
        pid = int(connection.recv().payload)
        connection.control(1, {"op": "resize", "cols": 10, "rows": 10})
        connection.wait_closed_by_agent()
    wait_dead(pid)
