"""The SDK's secrets against a real server: values go in and never come out.

Written once for ``AsyncShells``; ``scripts/unasync.py`` turns this file into
``test_sdk_secrets_sync.py``, which runs the same tests through ``Shells``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from shells import AsyncShells
from shells.sdk import Conflict, InvalidRequest, SecretNotFound

from .harness import ServerProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
async def sdk(server: ServerProcess) -> AsyncIterator[AsyncShells]:
    async with AsyncShells(server.url, server.token) as client:
        yield client


async def test_a_secret_is_written_rotated_and_deleted_and_never_read_back(sdk: AsyncShells) -> None:
    name = "SDK_" + secrets.token_hex(4).upper()
    value = "real" + secrets.token_hex(16)
    created = await sdk.secrets.create(
        name, value, ["api.example.org", "*.example.net"], header="Authorization"
    )
    assert (created.name, created.hosts, created.header, created.version) == (
        name,
        ["api.example.org", "*.example.net"],
        "authorization",
        1,
    )
    try:
        with pytest.raises(Conflict):
            await sdk.secrets.create(name, value, ["api.example.org"])
        with pytest.raises(InvalidRequest):
            await sdk.secrets.create("SDK_EMPTY", value, [])
        rotated = await sdk.secrets.update(name, value="real" + secrets.token_hex(16))
        assert rotated.version == 2
        moved = await sdk.secrets.update(name, hosts=["api.example.org"])
        assert moved.hosts == ["api.example.org"] and moved.version == 2
        assert name in {s.name for s in await sdk.secrets.list()}
        assert value not in repr(await sdk.secrets.get(name)) + repr(await sdk.secrets.list())
        shell = await sdk.create("python", network="internet", secrets=[name])
        try:
            out = await shell.commands.run(["printenv", name])
            assert out.stdout.startswith("shells-secret-") and value not in out.stdout
        finally:
            await shell.kill()
    finally:
        await sdk.secrets.delete(name)
    with pytest.raises(SecretNotFound):
        await sdk.secrets.get(name)
