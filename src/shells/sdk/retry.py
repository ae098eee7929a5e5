"""When the SDK sends a request again, and how long it waits first.

The rule: a request is sent again only if it certainly never reached the server (the connection
could not be made), if the server refused it before doing anything (429: the token's rate limit), or
if sending it twice does no harm (GET, PUT, DELETE). A command, a code run, a create or an action is
otherwise never replayed: the server may already be running it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
RATE_LIMITED = 429
"""Refused by the rate limit at authentication, before anything ran: safe to send again, later."""
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that happen before a single byte of the request left this process."""


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` more attempts at most, waiting ``backoff_s * 2**n`` (capped at
    ``max_backoff_s``, with jitter) before attempt ``n + 1``. ``RetryPolicy(max_retries=0)`` never
    retries."""

    max_retries: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): between half and all of the
        exponential step, so that many clients do not come back at the same instant."""
        step = min(self.max_backoff_s, self.backoff_s * 2.0**retry)
        return step * (0.5 + random.random() / 2)

    def allows(
        self,
        method: str,
        retry: int,
        *,
        error: httpx.TransportError | None = None,
        status: int | None = None,
    ) -> bool:
        """Whether a request that failed with ``error`` (or answered ``status``) may be sent again."""
        if retry >= self.max_retries:
            return False
        if isinstance(error, NOT_SENT) or status == RATE_LIMITED:
            return True
        if method.upper() not in IDEMPOTENT_METHODS:
            return False
        return error is not None or status in RETRY_STATUSES


def retry_after(response: httpx.Response) -> float:
    """Seconds a read 429 answer asks the caller to wait: ``details.retry_after_s`` (precise), else the
    ``Retry-After`` header (whole seconds), else 0."""
    try:
        details = response.json()["error"]["details"]
        return max(0.0, float(details["retry_after_s"]))
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0
