"""Wake on request, end to end: a request to an exposed port of a paused microvm resumes it and is
answered once it is back; concurrent first requests share one resume; the idle timer runs again
afterwards; a shell without ``auto_resume`` (or of a class that cannot pause) is not woken.

Its own server without a warm pool, so the VMs have the two shared cores to themselves."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend

from .harness import ServerProcess, running_server
from .rest import ShellMaker, error_of, exec_wait, rest_client, shell_maker, wait_for

MISSING = MicrovmBackend.available()
PORT = 8000
SERVE = (
    "mkdir -p /srv && echo hello-from-a-woken-shell > /srv/index.html && "
    f"setsid python3 -m http.server {PORT} --bind 0.0.0.0 --directory /srv >/dev/null 2>&1 < /dev/null & "
    'for i in $(seq 100); do python3 -c "import urllib.request as u; '
    f"u.urlopen('http://127.0.0.1:{PORT}/')\" 2>/dev/null && break; sleep 0.2; done"
)


@pytest.fixture(scope="module")
def wake_server(data_root: Path) -> Iterator[ServerProcess]:
    with running_server(data_root / "wake", warm_pool=0) as srv:
        yield srv


@pytest.fixture
def api(wake_server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(wake_server) as client:
        yield client


@pytest.fixture
def make(api: httpx.Client) -> Iterator[ShellMaker]:
    with shell_maker(api) as maker:
        yield maker


def serving_shell(api: httpx.Client, make: ShellMaker, **body: Any) -> dict[str, Any]:
    """A shell whose HTTP server on PORT is exposed publicly."""
    shell = make(language="python", network="localhost", **body)
    exec_wait(api, shell["id"], SERVE)
    r = api.post(f"/v1/shells/{shell['id']}/ports", json={"port": PORT, "public": True})
    assert r.status_code == 201, r.text
    return shell


def state_of(api: httpx.Client, shell_id: str) -> str:
    return str(api.get(f"/v1/shells/{shell_id}").json()["state"])


def wait_state(api: httpx.Client, shell_id: str, want: str) -> None:
    wait_for(lambda: state_of(api, shell_id) == want, every_s=0.5)


def get_page(server: ServerProcess, shell_id: str) -> httpx.Response:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.ingress_port}", timeout=120) as web:
        return web.get("/", headers={"Host": f"{PORT}-{shell_id}.localhost"})


def wakes(api: httpx.Client, shell_id: str) -> list[dict[str, Any]]:
    events = api.get(f"/v1/shells/{shell_id}/events").json()["events"]
    return [e for e in events if e["action"] == "resume" and "woken" in e["message"]]


@pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")
def test_a_paused_microvm_answers_through_its_port_and_pauses_again_when_idle(
    api: httpx.Client, make: ShellMaker, wake_server: ServerProcess
) -> None:
    vm = serving_shell(api, make, runtime="microvm", idle_timeout_s=4)
    assert vm["auto_resume"] is True  # the default where the class can pause
    wait_state(api, vm["id"], "paused")  # the idle monitor paused it
    with ThreadPoolExecutor(4) as pool:  # four first requests at once, none dropped
        answers = list(pool.map(lambda _: get_page(wake_server, vm["id"]), range(4)))
    assert [r.status_code for r in answers] == [200] * 4
    assert all("hello-from-a-woken-shell" in r.text for r in answers)
    assert len(wakes(api, vm["id"])) == 1  # one resume served them all
    assert wakes(api, vm["id"])[0]["door"] == "system"
    wait_state(api, vm["id"], "paused")  # the idle timer runs again after the wake
    assert get_page(wake_server, vm["id"]).status_code == 200
    assert len(wakes(api, vm["id"])) == 2


@pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")
def test_a_microvm_without_auto_resume_stays_paused(
    api: httpx.Client, make: ShellMaker, wake_server: ServerProcess
) -> None:
    vm = serving_shell(api, make, runtime="microvm", idle_timeout_s=0, auto_resume=False)
    assert vm["auto_resume"] is False
    assert api.post(f"/v1/shells/{vm['id']}/actions/pause").status_code == 200
    error_of(get_page(wake_server, vm["id"]), 409, "invalid_state")
    assert state_of(api, vm["id"]) == "paused" and not wakes(api, vm["id"])
    error_of(
        api.post("/v1/shells", json={"language": "python", "auto_resume": "yes"}), 400, "invalid_request"
    )


def test_a_container_serves_through_its_port_and_a_stopped_one_is_not_woken(
    api: httpx.Client, make: ShellMaker, wake_server: ServerProcess
) -> None:
    error_of(
        api.post("/v1/shells", json={"language": "python", "auto_resume": True}), 409, "feature_unavailable"
    )
    box = serving_shell(api, make)
    assert box["auto_resume"] is False  # containers cannot pause, so nothing wakes them
    r = get_page(wake_server, box["id"])
    assert r.status_code == 200 and "hello-from-a-woken-shell" in r.text
    assert api.post(f"/v1/shells/{box['id']}/actions/stop").status_code == 200
    error_of(get_page(wake_server, box["id"]), 409, "invalid_state")
    assert state_of(api, box["id"]) == "stopped"
