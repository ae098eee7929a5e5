"""``POST /v1/shells/{id}/exec`` is answered by a lean handler ahead of FastAPI (``api.exec_fast``);
a request with any other query parameter goes through the FastAPI route instead. Both must give the
same answer, error bodies and audit rows included: every case here is sent both ways and compared."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shells.domain.limits import MAX_JSON_BODY_BYTES

from ..support.waiting import wait_until
from .harness import ServerProcess
from .tenancy import ADMIN, MEMBER, Caller, Tenancy, create_shell

ROUTE = {"via": "fastapi"}
"""A query parameter the route ignores and the lean handler does not take: the FastAPI route answers."""
VOLATILE = {"duration_ms", "pid"}


@dataclass
class World:
    tenancy: Tenancy
    boss: Caller
    owner: Caller
    reader: Caller
    stranger: Caller
    shell: str


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    tenancy = Tenancy(server)
    a, b = tenancy.tenant("lean"), tenancy.tenant("other")
    owner = tenancy.caller(a, "owner", MEMBER)
    reader = tenancy.caller(a, "reader", ["shells.read"])
    stranger = tenancy.caller(b, "stranger", MEMBER)
    boss = tenancy.caller(a, "boss", ADMIN)
    yield World(tenancy, boss, owner, reader, stranger, create_shell(owner))
    tenancy.close()


def _steady(value: Any) -> Any:
    """``value`` without what differs from run to run (timings, pids)."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in VOLATILE}
    return value


def both(http: httpx.Client, path: str, wait: str | None, **request: Any) -> list[tuple[int, Any, str]]:
    """The answer of the lean handler and of the FastAPI route to the same request: status, body
    (NDJSON as a list of lines), and the headers that carry meaning."""
    answers = []
    for extra in ({}, ROUTE):
        params = ({"wait": wait} if wait is not None else {}) | extra
        r = http.post(path, params=params, **request)
        assert r.headers["x-request-id"]
        if r.headers["content-type"].startswith("application/x-ndjson"):
            body: Any = [_steady(json.loads(line)) for line in r.text.splitlines() if line]
        else:
            body = _steady(r.json())
        answers.append((r.status_code, body, r.headers.get("www-authenticate", "")))
    assert answers[0] == answers[1]
    return answers


def test_a_waited_and_a_streamed_exec_answer_alike(world: World) -> None:
    path = f"/v1/shells/{world.shell}/exec"
    [(status, body, _), _] = both(world.owner.http, path, "true", json={"command": "echo hi; echo err >&2"})
    assert (status, body["stdout"], body["stderr"], body["exit_code"]) == (200, "hi\n", "err\n", 0)
    [(status, lines, _), _] = both(world.owner.http, path, None, json={"cmd": ["echo", "hi"]})
    assert status == 200 and [line["type"] for line in lines] == ["started", "stdout", "exit"]
    both(world.owner.http, path, "1", json={"cmd": ["sh", "-c", "exit 3"], "stdin": "x"})
    both(world.owner.http, path, "false", json={"cmd": ["true"]})


@pytest.mark.parametrize(
    "request_",
    [
        {"json": {}},
        {"json": {"cmd": "ls"}},
        {"json": {"cmd": ["true"], "colour": "red"}},
        {"json": {"cmd": ["true"], "timeout_s": -1}},
        {"json": {"cmd": ["a\u0000b"]}},
        {"json": {"cmd": ["/no/such/program"]}},
        {"json": [1]},
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        {"content": b"{" + b" " * MAX_JSON_BODY_BYTES + b"}"},
    ],
)
def test_bad_bodies_get_the_same_typed_error(world: World, request_: dict[str, Any]) -> None:
    [(status, body, _), _] = both(world.owner.http, f"/v1/shells/{world.shell}/exec", "true", **request_)
    assert status in (400, 413) and body["error"]["message"]


def test_callers_who_may_not_exec_are_refused_alike(world: World) -> None:
    path = f"/v1/shells/{world.shell}/exec"
    body = {"json": {"cmd": ["true"]}}
    anonymous = world.tenancy.client(None)
    forged = world.tenancy.client("sk_not_a_token")
    try:
        assert both(anonymous, path, "true", **body)[0][0] == 401
        assert both(forged, path, "true", **body)[0][2] == "Bearer"
    finally:
        anonymous.close()
        forged.close()
    assert both(world.reader.http, path, "true", **body)[0][0] == 403
    assert both(world.stranger.http, path, "true", **body)[0][0] == 404
    assert both(world.owner.http, "/v1/shells/sh_nosuchshell/exec", "true", **body)[0][0] == 404


def test_each_exec_is_one_audit_row_named_exec_either_way(world: World) -> None:
    ran = [
        world.owner.http.post(
            f"/v1/shells/{world.shell}/exec", params={"wait": "true"} | extra, json={"cmd": ["true"]}
        ).headers["x-request-id"]
        for extra in ({}, ROUTE)
    ]

    def rows() -> list[tuple[str, str, str]]:
        trail = world.boss.http.get("/v1/audit", params={"shell": world.shell}).json()["events"]
        return sorted((e["kind"], e["action"], e["outcome"]) for e in trail if e["request_id"] in ran)

    # A waited exec's row is written just after its answer is sent.
    wait_until(lambda: len(rows()) >= 2, what="both exec rows")
    assert rows() == [("exec", "exec", "ok")] * 2
