"""Workspace sync of a container shell, from the command line, into a user's bucket on a real S3
server (SeaweedFS, authentication enforced, the user's own key): files written inside land in the
bucket with no copy step and are complete at stop and at delete; links the shell made are never
followed by the host (a link to /etc/shadow or to a host directory sends nothing); the key is
nowhere inside the shell."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from shells.objects.store import S3Location, S3Objects
from tests.support.s3 import USER, S3Server

from .conftest import StartServer
from .harness import SHELLS, ServerProcess

BUCKET = "alice-runs"


@pytest.fixture(scope="module", autouse=True)
def alice_bucket(s3: S3Server) -> None:
    asyncio.run(_bucket(s3).create_bucket())


def _bucket(s3: S3Server) -> S3Objects:
    return S3Objects(S3Location.parse(s3.url(BUCKET, identity=USER, prefix="run-7")))


def _read(s3: S3Server, key: str, dest: Path) -> bytes | None:
    async def go() -> bytes | None:
        objects = _bucket(s3)
        try:
            if await objects.head(key) is None:
                return None
            await objects.get(key, dest)
            return dest.read_bytes()
        finally:
            await objects.aclose()

    return asyncio.run(go())


def _keys(s3: S3Server) -> list[str]:
    async def go() -> list[str]:
        objects = _bucket(s3)
        try:
            return await objects.list("")
        finally:
            await objects.aclose()

    return asyncio.run(go())


def _shells(server: ServerProcess, *args: str) -> str:
    env = os.environ | {
        "SHELLS_BASE_URL": server.url,
        "SHELLS_API_TOKEN": server.token,
        "SHELLS_SYNC_SECRET": USER[1],  # not on the command line
    }
    done = subprocess.run([*SHELLS, *args], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_container_workspace_lands_in_the_users_bucket(
    start_server: StartServer, s3: S3Server, tmp_path: Path
) -> None:
    private = s3.endpoint.split("://")[1]  # the operator's own S3 server, on this host
    server = start_server("sync", warm_pool=0, env={"SHELLS_SYNC_PRIVATE_ENDPOINTS": private})
    with server.client() as client:
        url = f"{s3.endpoint.replace('://', f'://{USER[0]}@')}/{BUCKET}/run-7"
        shell_id = _shells(server, "create", "--language", "python", "--sync", url).strip()
        shell = client.get(shell_id)
        script = (
            "mkdir -p /workspace/out && echo result > /workspace/out/r.txt"
            " && ln -s /etc/shadow /workspace/shadow && ln -s /etc /workspace/etc-dir"
            " && mkfifo /workspace/pipe"
        )
        assert shell.commands.run(script).exit_code == 0
        deadline = time.monotonic() + 30
        while _read(s3, "out/r.txt", tmp_path / "r") != b"result\n":
            assert time.monotonic() < deadline, _shells(server, "sync", shell_id)
            time.sleep(0.5)
        status = json.loads(_shells(server, "sync", shell_id))
        assert status["bucket"] == BUCKET and status["access_key_id"] == USER[0]
        assert USER[1] not in json.dumps(status)
        assert status["skipped_files"] >= 3  # two links and a pipe: listed, never followed or read
        inside = shell.commands.run("cat /proc/1/environ; env; cat /proc/self/mountinfo").stdout
        assert USER[1] not in inside and USER[0] not in inside

        assert (
            shell.commands.run("echo later > /workspace/out/late.txt; rm /workspace/out/r.txt").exit_code == 0
        )
        shell.stop()  # complete at stop
        assert _read(s3, "out/late.txt", tmp_path / "l") == b"later\n"
        assert _keys(s3) == ["out/late.txt"]
        shell.start()
        assert shell.commands.run("echo final > /workspace/final.txt").exit_code == 0
        assert shell.kill()  # complete at delete
        assert _read(s3, "final.txt", tmp_path / "f") == b"final\n"
