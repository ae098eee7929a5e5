"""A newcomer's first hour, as the README tells it: a second instance beside the first, a preset
that is not built yet, ``template build --all``, the devbox's tools, and ``purge``."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from .conftest import StartServer
from .harness import SHELLS, ServerProcess, free_port, serving, storage_images
from .rest import BUILD_TIMEOUT_S


@contextmanager
def holding(port: int) -> Iterator[None]:
    """Keep ``127.0.0.1:port`` taken (as another instance's ingress proxy would) while inside."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        yield


def cli(server: ServerProcess, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token}
    return subprocess.run(
        [*SHELLS, *args], env=env, check=False, capture_output=True, text=True, timeout=timeout_s
    )


def exposed_port_url(server: ServerProcess) -> str:
    with server.client() as client:
        shell = client.create("bash", network="localhost")
        try:
            return str(shell.ports.expose(8000, public=True).url)
        finally:
            shell.kill()


def test_a_second_instance_started_as_the_readme_shows_takes_a_free_ingress_port(
    start_server: StartServer,
) -> None:
    first = start_server("readme-first", ingress_port=None, warm_pool=0)
    api_port = free_port()
    with holding(api_port + 1):  # the ingress port the second instance would take by default
        second = start_server("readme-second", port=api_port, ingress_port=None, warm_pool=0)
    first_url, second_url = exposed_port_url(first), exposed_port_url(second)
    assert f".localhost:{first.port + 1}/" in first_url  # beside the API port when that is free
    second_ingress = int(second_url.rsplit(":", 1)[1].rstrip("/"))
    assert second_ingress not in (first.port + 1, second.port + 1)
    # the proxy really listens there: an unknown shell is its own 404, not a refused connection
    answer = httpx.get(f"http://127.0.0.1:{second_ingress}/sh_nope/8000/", timeout=10)
    assert answer.status_code == 404


def test_a_taken_port_refuses_the_start_with_one_sentence_naming_the_setting(tmp_path: Path) -> None:
    api_port, ingress_port = free_port(), free_port()
    for taken, env, setting in (
        (ingress_port, {"SHELLS_INGRESS_PORT": str(ingress_port)}, "SHELLS_INGRESS_PORT"),
        (api_port, {}, "--port"),
    ):
        with holding(taken):
            run = subprocess.run(
                [*SHELLS, "serve", "--data-dir", str(tmp_path / "refused"), "--port", str(api_port)],
                env=os.environ | env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert run.returncode != 0
        assert "Traceback" not in run.stderr and setting in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not storage_images(tmp_path / "refused")  # refused before anything was made


def test_a_fresh_server_builds_what_the_readme_promises_and_purge_leaves_no_image(data_root: Path) -> None:
    server = ServerProcess(data_root / "fresh", ingress_port=None, warm_pool=0)
    with serving(server):  # not start_server: this test checks the purge itself, below
        assert storage_images(server.data_dir)  # the btrfs pool's image is in use
        made = cli(server, "create", "--language", "node")
        assert made.returncode == 0, made.stderr
        ran = cli(server, "exec", made.stdout.strip(), "--", "node", "-e", "console.log(6*7)")
        assert (ran.returncode, ran.stdout) == (0, "42\n"), ran.stderr
        built = cli(server, "template", "build", "--all", timeout_s=BUILD_TIMEOUT_S)
        assert built.returncode == 0, built.stderr
        assert set(built.stdout.split()) == {"base:1", "python:1", "node:1", "go:1", "rust:1", "devbox:1"}
        with server.client() as client:
            devbox = client.create("python", template="devbox:1")
            try:
                tools = "node --version; bun --version; python3 --version; go version; rustc --version"
                found = devbox.commands.run(f"{tools}; pi --version 2>&1", timeout=120)  # pi: on stderr
                assert found.exit_code == 0, found.stderr
                *_, pi = found.stdout.splitlines()
                assert pi[0].isdigit(), found.stdout
                assert client.templates.get("devbox:1").versions["pi"] == pi
                agent = devbox.commands.run("pi --help 2>&1", timeout=120)
                assert agent.exit_code == 0 and "usage" in agent.stdout.lower(), agent.stdout
            finally:
                devbox.kill()
    # serving purged the instance and found no storage image; say it here too
    assert not storage_images(server.data_dir)
