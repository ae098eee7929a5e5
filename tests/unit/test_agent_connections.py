"""The host keeps a connection to a container's agent for the next call once a call ended cleanly
(``agent_client._Idle``): an exec then costs a channel, not a connect, an accept and a reader task
(issue 25). A call cut short still closes its connection (which is how it is cancelled), and a kept
connection the agent closed (the agent restarted) is never used again."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.domain.execution import ExecExit, ExecSpec, ExecStarted, OutputChunk
from shells.runtime import agent_client
from shells.runtime.agent_client import AgentClient
from tests.unit.test_agent import WAIT_S, running_agent, start_agent

pytestmark = pytest.mark.anyio


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The socket paths of the agent connections opened during the test."""
    paths: list[str] = []
    real = agent_client._Connection.open_unix.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[agent_client._Connection], path: str, deadline: float) -> object:
        paths.append(path)
        return await real(cls, path, deadline)

    monkeypatch.setattr(agent_client._Connection, "open_unix", classmethod(counting))
    yield paths


async def _echo(client: AgentClient, text: str) -> bytes:
    result = await client.run(ExecSpec(argv=("echo", text), cwd="/tmp"))
    assert result.exit.exit_code == 0
    return result.stdout


async def test_calls_one_after_another_share_one_connection_and_a_cut_call_closes_its_own(
    opened: list[str],
) -> None:
    with running_agent() as agent:
        client = agent.client()
        for i in range(5):
            assert await _echo(client, f"call {i}") == f"call {i}\n".encode()
        assert (await client.ping())["pid"] == agent.pid
        assert len(opened) == 1, "each call opened a connection of its own"

        async with contextlib.aclosing(
            client.exec(ExecSpec(command="echo $$; exec sleep 60", cwd="/"))
        ) as events:  # left before its exit: cancelled by closing the connection
            assert isinstance(await anext(events), ExecStarted)
            first = await anext(events)
            assert isinstance(first, OutputChunk)
            pid = int(first.data)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while Path(f"/proc/{pid}").exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert not Path(f"/proc/{pid}").exists(), "the cut exec's command still runs"
        assert await _echo(client, "after") == b"after\n"
        assert len(opened) == 2, "a connection whose call was cut short was used again"


async def test_a_kept_connection_to_an_agent_that_restarted_is_not_used(opened: list[str]) -> None:
    with running_agent() as agent:
        client = agent.client()
        assert await _echo(client, "first") == b"first\n"
        agent.process.send_signal(signal.SIGTERM)
        assert agent.process.wait(timeout=WAIT_S) == 0
        # The loop notices the agent's close the next time it polls, which a server always does
        # between a shell's stop and its next start.
        await asyncio.sleep(0.05)
        Path(agent.socket).unlink()
        assert agent.process.stdout is not None
        agent.process.stdout.close()
        agent.process = start_agent(agent.socket, stdout=subprocess.PIPE)
        assert agent.process.stdout is not None
        assert agent.process.stdout.readline() == b"shells-agent ready\n"
        events = [e async for e in client.exec(ExecSpec(argv=("echo", "second"), cwd="/tmp"))]
        assert isinstance(events[-1], ExecExit) and events[-1].exit_code == 0
        assert OutputChunk("stdout", b"second\n") in events
        assert (await client.ping())["pid"] == agent.pid
        assert len(opened) == 2
