# Generated from tests/e2e/test_sdk_secrets_async.py by scripts/unasync.py; edit that file and run the script.
"""The SDK's secrets against a real server: values go in and never come out.

Written once for ``Shells``; ``scripts/unasync.py`` turns this file into
``test_sdk_secrets_sync.py``, which runs the same tests through ``Shells``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from shells import Shells
from shells.sdk import Conflict, InvalidRequest, SecretNotFound

from .harness import ServerProcess


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[Shells]:
    with Shells(server.url, server.token) as client:
        yield client


def test_a_secret_is_written_rotated_and_deleted_and_never_read_back(sdk: Shells) -> None:
    name = "SDK_" + secrets.token_hex(4).upper()
    value = "real" + secrets.token_hex(16)
    created = sdk.secrets.create(name, value, ["api.example.org", "*.example.net"], header="Authorization")
    assert (created.name, created.hosts, created.header, created.version) == (
        name,
        ["api.example.org", "*.example.net"],
        "authorization",
        1,
    )
    try:
        with pytest.raises(Conflict):
            sdk.secrets.create(name, value, ["api.example.org"])
        with pytest.raises(InvalidRequest):
            sdk.secrets.create("SDK_EMPTY", value, [])
        rotated = sdk.secrets.update(name, value="real" + secrets.token_hex(16))
        assert rotated.version == 2
        moved = sdk.secrets.update(name, hosts=["api.example.org"])
        assert moved.hosts == ["api.example.org"] and moved.version == 2
        assert name in {s.name for s in sdk.secrets.list()}
        assert value not in repr(sdk.secrets.get(name)) + repr(sdk.secrets.list())
        shell = sdk.create("python", network="internet", secrets=[name])
        try:
            out = shell.commands.run(["printenv", name])
            assert out.stdout.startswith("shells-secret-") and value not in out.stdout
        finally:
            shell.kill()
    finally:
        sdk.secrets.delete(name)
    with pytest.raises(SecretNotFound):
        sdk.secrets.get(name)
