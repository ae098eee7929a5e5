"""The HTTP door's own limits on small apps: an unexpected exception ends in the app, integers fit
in 64 bits, a body that stops arriving times out, the drain ends endless streams, an env that no
exec could pass is refused at create, and a request waits for a restart under way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shells.api import deps
from shells.api.body_timeout import BodyTimeout
from shells.api.drain import Drain, Draining
from shells.api.errors import install
from shells.control.requests import CreateShellRequest, parse_exec
from shells.control.restarts import Restarts
from shells.domain.errors import InvalidRequest, ShellBusy, ShuttingDown
from shells.domain.execution import ExecExit, ExecStarted, OutputChunk, collect


def test_an_unexpected_exception_is_answered_and_goes_no_further() -> None:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("a bug")

    with TestClient(app) as client:  # raises what escapes the app (uvicorn would drop the connection)
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "runtime_failure"


def test_a_json_integer_past_64_bits_is_a_400() -> None:
    app = FastAPI()
    install(app)

    @app.post("/echo")
    async def echo(body: deps.BodyDep) -> dict[str, Any]:
        return body

    with TestClient(app) as client:
        assert client.post("/echo", content=b'{"n": 9223372036854775807}').status_code == 200
        response = client.post("/echo", content=b'{"n": 99999999999999999999}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.anyio
async def test_a_body_that_stops_arriving_times_out() -> None:
    app = FastAPI()
    install(app)
    app.add_middleware(BodyTimeout, idle_s=0.2)

    @app.post("/echo")
    async def echo(body: deps.BodyDep) -> dict[str, Any]:
        return body

    pieces = [{"type": "http.request", "body": b'{"a":', "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pieces:
            return pieces.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-length", b"100"), (b"host", b"x")]
    scope = {"type": "http", "method": "POST", "path": "/echo", "headers": headers, "query_string": b""}
    await asyncio.wait_for(app(scope | {"app": app}, receive, send), 5)  # type: ignore[arg-type]
    assert sent[0]["status"] == 408
    assert b"request_timeout" in sent[1]["body"]


def test_env_that_no_exec_could_pass_is_refused_at_create() -> None:
    for env in ({"A\0B": "x"}, {"A=B": "x"}, {"": "x"}, {"A": "x\0y"}):
        with pytest.raises(InvalidRequest, match="'env'"):
            CreateShellRequest.parse({"language": "bash", "env": env})
        with pytest.raises(InvalidRequest, match="'env'"):
            parse_exec({"cmd": ["true"], "env": env})
    assert CreateShellRequest.parse({"language": "bash", "env": {"A": "="}}).env == {"A": "="}


@pytest.mark.anyio
async def test_a_whole_answer_keeps_the_head_up_to_its_cap() -> None:
    async def events() -> AsyncIterator[Any]:
        yield ExecStarted(1)
        yield OutputChunk("stdout", b"a" * 6)
        yield OutputChunk("stderr", b"b" * 6)
        yield ExecExit(0)

    result = await collect(events(), cap=8)
    assert (result.stdout, result.stderr, result.exit.truncated) == (b"a" * 6, b"bb", True)
    exact = await collect(events(), cap=12)
    assert exact.exit.truncated is False


async def endless() -> AsyncIterator[int]:
    n = 0
    try:
        while True:
            yield n
            n += 1
            await asyncio.sleep(0.01)
    finally:
        ended.append(n)


ended: list[int] = []


@pytest.mark.anyio
async def test_the_drain_ends_an_endless_stream_after_its_grace() -> None:
    drain = Drain(grace_s=0.2)
    seen: list[int] = []

    async def consume() -> None:
        async for item in drain.stream(endless()):
            seen.append(item)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    finishing = asyncio.ensure_future(drain.finish())
    await asyncio.sleep(0)
    assert drain.draining
    with pytest.raises(ShuttingDown):
        await consumer
    await finishing
    assert 0.15 < asyncio.get_running_loop().time() - started < 1.5
    assert seen and ended  # the source was closed (a command's channel would be)
    whole = Drain(grace_s=0)  # a whole answer (?wait=true) being collected ends too
    answer = asyncio.ensure_future(whole.run(asyncio.sleep(3600)))
    await asyncio.sleep(0)
    await whole.finish()
    with pytest.raises(ShuttingDown):
        await answer


@pytest.mark.anyio
async def test_a_caller_leaving_a_stream_closes_its_source() -> None:
    ended.clear()
    drain = Drain(grace_s=10)
    stream = drain.stream(endless())
    assert await anext(stream) == 0
    reader = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    reader.cancel()  # the client went away while the next item was awaited
    with pytest.raises(asyncio.CancelledError):
        await reader
    await cast(AsyncGenerator[int], stream).aclose()
    assert ended
    await asyncio.wait_for(drain.finish(), 1)  # nothing is left open


def test_a_draining_server_answers_503_with_retry_after() -> None:
    app = FastAPI()
    install(app)
    drain = Drain(grace_s=0)
    app.add_middleware(Draining, drain=drain)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        assert client.get("/ok").status_code == 200
        drain.draining = True
        response = client.get("/ok")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "shutting_down"
    assert response.headers["retry-after"] == "5"


@pytest.mark.anyio
async def test_a_request_waits_for_a_restart_and_a_long_one_is_busy() -> None:
    restarts = Restarts()
    assert await restarts.wait("sh_a") is False
    with restarts.running("sh_a"):
        waiter = asyncio.ensure_future(restarts.wait("sh_a"))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        with pytest.raises(ShellBusy):
            await restarts.wait("sh_a", timeout_s=0.05)
    assert await waiter is True
