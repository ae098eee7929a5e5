"""What may be sent again: only what never reached the server, or what is harmless to repeat."""

from __future__ import annotations

import httpx
import pytest

from shells.sdk.retry import RetryPolicy, retry_after

REQUEST = httpx.Request("GET", "http://h/")
NOT_SENT = [httpx.ConnectError("refused", request=REQUEST), httpx.ConnectTimeout("slow", request=REQUEST)]
MAYBE_SENT = [httpx.RemoteProtocolError("gone", request=REQUEST), httpx.ReadTimeout("slow", request=REQUEST)]


@pytest.mark.parametrize("method", ["POST", "PATCH", "GET", "PUT", "DELETE"])
@pytest.mark.parametrize("error", NOT_SENT)
def test_a_request_that_never_left_is_retried_whatever_its_method(
    method: str, error: httpx.TransportError
) -> None:
    assert RetryPolicy().allows(method, 0, error=error)


@pytest.mark.parametrize("error", MAYBE_SENT)
def test_a_request_that_may_have_arrived_is_retried_only_if_idempotent(error: httpx.TransportError) -> None:
    policy = RetryPolicy()
    assert [m for m in ("GET", "PUT", "DELETE", "POST", "PATCH") if policy.allows(m, 0, error=error)] == [
        "GET",
        "PUT",
        "DELETE",
    ]


def test_statuses_worth_a_retry_are_gateway_trouble_on_idempotent_requests() -> None:
    policy = RetryPolicy()
    assert [s for s in (400, 404, 409, 500, 502, 503, 504) if policy.allows("GET", 0, status=s)] == [
        502,
        503,
        504,
    ]
    assert not policy.allows("POST", 0, status=503)


@pytest.mark.parametrize("method", ["POST", "PATCH", "GET", "PUT", "DELETE"])
def test_a_rate_limited_request_never_ran_so_any_method_is_retried(method: str) -> None:
    assert RetryPolicy().allows(method, 0, status=429)
    assert not RetryPolicy(max_retries=1).allows(method, 1, status=429)


def test_the_wait_a_429_asks_for_comes_from_its_details_or_its_header() -> None:
    body = {"error": {"code": "rate_limited", "message": "m", "details": {"retry_after_s": 0.25}}}
    assert retry_after(httpx.Response(429, json=body, headers={"Retry-After": "1"})) == 0.25
    assert retry_after(httpx.Response(429, text="busy", headers={"Retry-After": "2"})) == 2.0
    assert retry_after(httpx.Response(429, json={"error": {"details": {}}})) == 0.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})) == 0.0


def test_retries_stop_at_the_limit() -> None:
    error = NOT_SENT[0]
    assert RetryPolicy(max_retries=2).allows("GET", 1, error=error)
    assert not RetryPolicy(max_retries=2).allows("GET", 2, error=error)
    assert not RetryPolicy(max_retries=0).allows("GET", 0, error=error)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_s=0.1, max_backoff_s=0.5)
    for retry, step in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (10, 0.5)]:
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert max(delays) - min(delays) > step / 10, "no jitter"
