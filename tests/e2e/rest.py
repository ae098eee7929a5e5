"""Plain-HTTP helpers for tests that check the REST contract itself (templates, run)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from .harness import ServerProcess

BUILD_TIMEOUT_S = 900.0


@contextmanager
def rest_client(server: ServerProcess, token: str | None = None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {token or server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=BUILD_TIMEOUT_S) as client:
        yield client


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The typed error of a response, after checking its status and code."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert len(err["message"]) > 10
    return dict(err)


def ndjson(api: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST and collect every NDJSON line of a streamed answer (which must be a 200)."""
    with api.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read().decode()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


def exec_wait(api: httpx.Client, shell_id: str, command: str, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/v1/shells/{shell_id}/exec", params={"wait": "true"}, json={"command": command, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


ShellMaker = Callable[..., dict[str, Any]]


@contextmanager
def shell_maker(api: httpx.Client) -> Iterator[ShellMaker]:
    """``make(**body)`` creates a shell (201 expected); every one is deleted at the end."""
    made: list[str] = []

    def make(**body: Any) -> dict[str, Any]:
        r = api.post("/v1/shells", json=body)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return dict(r.json())

    try:
        yield make
    finally:
        for shell_id in made:
            api.delete(f"/v1/shells/{shell_id}")


def wait_for(check: Callable[[], bool], timeout_s: float = 60, every_s: float = 0.25) -> None:
    """Poll ``check`` until it holds, then assert it (so a timeout fails with the check's own line)."""
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(every_s)
    assert check()
