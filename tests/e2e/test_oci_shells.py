"""Shells from imported images with no Python and no glibc (a static busybox; a musl "alpine-like"
image), container and microvm classes: ``ls /``, exec, files and the terminal work, and the image's
Env, WorkingDir and User apply to commands and the terminal."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.oci_registry import Registry

from .oci import api, import_image, make, oci_server, registry, run
from .rest import ShellMaker, exec_wait

__all__ = ["api", "make", "oci_server", "registry"]  # fixtures

WAIT_S = 30.0


def screen_until(ws: ClientConnection, pattern: bytes) -> bytes:
    screen = b""
    deadline = time.monotonic() + WAIT_S
    while not re.search(pattern, screen):
        message = ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        if isinstance(message, bytes):
            screen += message
    return screen


def check_shell(api: httpx.Client, shell: dict[str, Any]) -> None:
    sid = shell["id"]
    listing = run(api, sid, "ls /").split()
    assert {"bin", "etc", "home", "workspace"} <= set(listing)
    assert run(api, sid, "command -v python3 python bash || echo none") == "none\n"
    who = run(api, sid, "id -u; id -g; pwd; echo $GREETING; echo $HOME")
    assert who.split("\n") == ["1000", "1000", "/home/app", "hello from the image", "/home/app", ""]
    # /workspace belongs to the image's user, who can write there
    assert (
        run(api, sid, "touch /workspace/mine && stat -c %u:%g /workspace /workspace/mine")
        == "1000:1000\n" * 2
    )
    failed = exec_wait(api, sid, "exit 3")
    assert failed["exit_code"] == 3
    # files, through the agent, as the shell's root
    put = api.put(
        f"/v1/shells/{sid}/files", params={"path": "/workspace/note.txt"}, content=b"from the host\n"
    )
    assert put.status_code == 200, put.text
    assert (
        api.get(f"/v1/shells/{sid}/files", params={"path": "/workspace/note.txt"}).content
        == b"from the host\n"
    )
    names = [
        e["name"] for e in api.get(f"/v1/shells/{sid}/files/list", params={"path": "/"}).json()["entries"]
    ]
    assert "bin" in names
    # the terminal: a login sh (no bash here) as the image's user, in its working directory
    cred = api.post(f"/v1/shells/{sid}/term", json={}).json()
    with connect(cred["url"] + f"?token={cred['token']}", open_timeout=WAIT_S) as ws:
        assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "ready"
        ws.send(json.dumps({"type": "input", "data": "echo T$((6*7)); id -u; pwd\n"}))
        screen = screen_until(ws, rb"/home/app\r\n")
        assert re.search(rb"T42\r\n1000\r\n/home/app\r\n", screen), screen
        ws.send(b"exit 0\n")


def test_a_busybox_image_without_python_or_libc_runs_container_shells(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    r = import_image(api, registry, "busybox:1", "busybox:1")
    assert r.status_code == 200, r.text
    t = r.json()
    assert (t["env"]["GREETING"], t["workdir"], t["image"]["user"]) == (
        "hello from the image",
        "/home/app",
        "app",
    )
    check_shell(api, make(language="bash", template="busybox:1"))


def test_a_musl_image_runs_its_own_musl_programs(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    r = import_image(api, registry, "musl:1", "musl:1")
    assert r.status_code == 200, r.text
    shell = make(language="bash", template="musl:1")
    assert (
        run(api, shell["id"], "hello-musl; ls /lib")
        == "hello from musl\nld-musl-x86_64.so.1\nlibc.musl-x86_64.so.1\n"
    )
    assert run(api, shell["id"], "id -u") == "0\n"  # no User in this image's config: root


@pytest.mark.usefixtures("registry")
def test_a_busybox_image_runs_microvm_shells(api: httpx.Client, registry: Registry, make: ShellMaker) -> None:
    offers = api.get("/v1/runtimes").json()
    if "microvm" not in json.dumps(offers):
        pytest.skip("no microvm class on this host")
    r = import_image(api, registry, "busybox:1", "busybox:1")
    assert r.status_code == 200, r.text
    shell = make(language="bash", template="busybox:1", runtime="microvm")
    assert shell["runtime"] == "microvm"
    check_shell(api, shell)
    assert run(api, shell["id"], "ls -d /.shells-agent/bin") == "/.shells-agent/bin\n"  # the host's runtime
