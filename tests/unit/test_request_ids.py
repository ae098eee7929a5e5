"""Every answer carries an X-Request-Id: the caller's when it is sane, a fresh one otherwise; the
request being served (``current_request``) has the same id."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from shells.api.request_context import RequestContext
from shells.control.request_scope import current_request


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    info = current_request()
    assert info is not None
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": info.request_id.encode()})


def _call(headers: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "GET", "headers": headers}
    asyncio.run(RequestContext(_app)(scope, receive, send))
    return dict(sent[0]["headers"]), sent[1]["body"]


def test_a_sane_caller_id_is_echoed_and_given_to_the_route() -> None:
    headers, body = _call([(b"x-request-id", b"abc-123_X.y")])
    assert headers[b"x-request-id"] == b"abc-123_X.y" == body
    assert headers[b"content-type"] == b"text/plain"


def test_a_missing_or_unsafe_id_is_replaced_by_a_fresh_one() -> None:
    for given in ([], [(b"x-request-id", b"evil\r\nSet-Cookie: x")], [(b"x-request-id", b"a" * 65)]):
        headers, body = _call(given)
        assert re.fullmatch(rb"[0-9a-f]{16}", headers[b"x-request-id"]) and body == headers[b"x-request-id"]
    assert _call([])[0][b"x-request-id"] != _call([])[0][b"x-request-id"]


def test_an_unknown_door_is_refused_with_a_request_id() -> None:
    headers, body = _call([(b"x-shells-door", b"backdoor")])
    assert re.fullmatch(rb"[0-9a-f]{16}", headers[b"x-request-id"])
    assert b"invalid_request" in body and b"X-Shells-Door" in body
