"""envd's encoding negotiation and the signed-URL index, without a server."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest
from starlette.requests import Request

from shells.domain.errors import InvalidRequest, PayloadTooLarge
from shells.domain.limits import E2B_MAX_INFLATED_BYTES, E2B_MAX_SIGNING_TOKENS_PER_SANDBOX
from shells.e2b.envd.encoding import accepted_encoding, content_encoding, inflated
from shells.e2b.signing import KnownTokens, signature


def request(headers: dict[str, str], body: list[bytes] | None = None) -> Request:
    chunks = list(body or [b""])

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw}, receive)


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("", None),
        ("gzip", "gzip"),
        ("GZIP;q=0.5, identity;q=0.9", None),
        ("identity;q=0.1, gzip;q=0.8", "gzip"),
        ("br", None),
        ("gzip;q=0", None),
        ("*", None),
        ("*, identity;q=0", "gzip"),
    ],
)
def test_accept_encoding_is_negotiated_as_envd_does(header: str, chosen: str | None) -> None:
    assert accepted_encoding(request({"accept-encoding": header})) == chosen


def test_refusing_identity_with_nothing_else_acceptable_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        accepted_encoding(request({"accept-encoding": "br, identity;q=0"}))


def test_content_encoding_takes_gzip_or_identity_only() -> None:
    assert content_encoding(request({"content-encoding": "Gzip"})) == "gzip"
    assert content_encoding(request({"content-encoding": "identity"})) is None
    with pytest.raises(InvalidRequest):
        content_encoding(request({"content-encoding": "deflate"}))


def read(req: Request) -> bytes:
    async def all_of() -> bytes:
        return b"".join([chunk async for chunk in req.stream()])

    return asyncio.run(all_of())


def test_an_upload_inflates_across_chunks_and_members() -> None:
    body = gzip.compress(b"a" * 3_000_000) + gzip.compress(b"tail")
    chunks = [body[i : i + 777] for i in range(0, len(body), 777)]
    assert read(inflated(request({}, chunks))) == b"a" * 3_000_000 + b"tail"


def test_a_truncated_or_corrupt_body_is_a_400() -> None:
    with pytest.raises(InvalidRequest):
        read(inflated(request({}, [gzip.compress(b"x" * 1000)[:-9]])))
    with pytest.raises(InvalidRequest):
        read(inflated(request({}, [b"plain bytes"])))


def test_a_gzip_bomb_stops_at_the_cap_without_inflating_it_whole() -> None:
    deflater = zlib.compressobj(wbits=31)
    zeros = bytes(1 << 20)
    bomb = [deflater.compress(zeros) for _ in range(E2B_MAX_INFLATED_BYTES // len(zeros) + 1)]
    bomb.append(deflater.flush())
    made = 0

    async def drain() -> None:
        nonlocal made
        async for chunk in inflated(request({}, bomb)).stream():
            assert len(chunk) <= 1 << 20
            made += len(chunk)

    with pytest.raises(PayloadTooLarge):
        asyncio.run(drain())
    assert made <= E2B_MAX_INFLATED_BYTES


def test_a_signature_names_its_sandbox_and_nothing_else_matches() -> None:
    known = KnownTokens()
    known.add("a", "t1.mac")
    known.add("b", "t2.mac")
    good = signature("/f", "read", "", "t2.mac", 99)
    assert known.find("/f", "read", "", good, 99, None) == ("b", "t2.mac")
    assert known.find("/f", "read", "", good, 99, "a") is None  # aimed at another sandbox
    assert known.find("/f", "write", "", good, 99, None) is None
    assert known.find("/f", "read", "root", good, 99, None) is None
    assert known.find("/f", "read", "", good, 100, None) is None
    assert known.find("/f", "read", "", "v1_\u00e9", 99, None) is None  # not ASCII: no match, no crash


def test_the_index_forgets_a_sandboxs_oldest_tokens() -> None:
    known = KnownTokens()
    for n in range(E2B_MAX_SIGNING_TOKENS_PER_SANDBOX + 1):
        known.add("a", f"t{n}.mac")
    tokens = [token for _, token in known.candidates("a")]
    assert len(tokens) == E2B_MAX_SIGNING_TOKENS_PER_SANDBOX and "t0.mac" not in tokens
