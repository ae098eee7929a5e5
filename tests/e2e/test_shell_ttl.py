"""A shell's hard time-to-live through Shells' own SDK (async and sync): it ends the shell whatever
it is doing, can be moved, and pauses (or stops, keeping files) instead when asked."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shells import AsyncShells, Shells
from shells.sdk import InvalidRequest, ShellNotFound

from .harness import ServerProcess

WAIT_S = 15.0


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[AsyncShells]:
    async with AsyncShells(server.url, server.token) as client:
        yield client


@pytest.mark.anyio
async def test_a_time_to_live_deletes_a_busy_shell_and_can_be_moved(sdk: AsyncShells) -> None:
    shell = await sdk.create("bash", timeout_s=600)
    try:
        first = shell.info.expires_at
        assert first is not None and shell.info.on_timeout == "kill"
        later = (await shell.set_timeout(900, extend_only=True)).expires_at
        assert later is not None and later > first
        assert (await shell.set_timeout(60, extend_only=True)).expires_at == later
        with pytest.raises(InvalidRequest):
            await shell.set_timeout(-1)
        await shell.set_timeout(1)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                await sdk.get(shell.id)
            except ShellNotFound:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the shell outlived its time-to-live")
    finally:
        await shell.kill()


def test_a_time_to_live_with_pause_stops_a_container_keeping_its_files(server: ServerProcess) -> None:
    with Shells(server.url, server.token) as client:
        shell = client.create("bash", timeout_s=1, on_timeout="pause")
        try:
            shell.files.write("/workspace/kept", b"yes")
            deadline = time.monotonic() + WAIT_S
            while shell.refresh().state == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            assert shell.info.state == "stopped", shell.info
            body = {"timeout_s": 600}
            r = httpx.post(
                f"{server.url}/v1/shells/{shell.id}/timeout",
                json=body | {"nope": 1},
                headers={"Authorization": f"Bearer {server.token}"},
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
            shell.set_timeout(600)
            shell.start()
            assert shell.files.read("/workspace/kept") == b"yes"
        finally:
            shell.kill()
