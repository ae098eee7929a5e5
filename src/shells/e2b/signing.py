"""Signed file URLs (E2B's ``download_url`` / ``upload_url``): ``GET`` or ``POST /files`` with
``signature`` (and optionally ``signature_expiration``) instead of the access token header.

The wire form is envd's: ``v1_`` + unpadded base64 of SHA-256 over
``path:operation:username:access-token[:expiration]``, where ``path`` and ``username`` are the query's
values as sent (no username is the empty string) and ``operation`` is ``read`` or ``write``. A
signature binds one path, one operation and one user; the expiration, if given, is part of what is
signed and is checked after the signature (both refusals are 401, as envd answers).

In header mode a signed URL names no sandbox (the SDK builds it on ``E2B_SANDBOX_URL`` alone), so the
door finds the sandbox by the signature: it remembers the access tokens it minted or saw used
(``KnownTokens``) and checks the signature against each. The index lives in memory: after a server
restart a sandbox's URLs work again once its token is used once more (create, connect, ``get_info``
or any in-sandbox call)."""

from __future__ import annotations

import base64
import hmac
from collections import OrderedDict
from collections.abc import Iterator
from hashlib import sha256
from typing import Literal

from ..domain.limits import E2B_MAX_SIGNING_SANDBOXES, E2B_MAX_SIGNING_TOKENS_PER_SANDBOX

Operation = Literal["read", "write"]
PREFIX = "v1_"


def signature(path: str, operation: Operation, user: str, token: str, expiration: int | None) -> str:
    parts = [path, operation, user, token] + ([] if expiration is None else [str(expiration)])
    digest = sha256(":".join(parts).encode()).digest()
    return PREFIX + base64.b64encode(digest).rstrip(b"=").decode("ascii")


class KnownTokens:
    """Access tokens per sandbox, most recently used last; the oldest sandboxes (and a sandbox's
    oldest tokens) are forgotten past the limits, so the index stays bounded whatever callers do."""

    def __init__(self) -> None:
        self._by_sandbox: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()

    def add(self, sandbox: str, token: str) -> None:
        tokens = self._by_sandbox.setdefault(sandbox, OrderedDict())
        self._by_sandbox.move_to_end(sandbox)
        tokens[token] = None
        tokens.move_to_end(token)
        while len(tokens) > E2B_MAX_SIGNING_TOKENS_PER_SANDBOX:
            tokens.popitem(last=False)
        while len(self._by_sandbox) > E2B_MAX_SIGNING_SANDBOXES:
            self._by_sandbox.popitem(last=False)

    def candidates(self, sandbox: str | None) -> Iterator[tuple[str, str]]:
        """(sandbox, access token) pairs a signature may come from: one sandbox's if named, else all."""
        names = [sandbox] if sandbox is not None else list(self._by_sandbox)
        for name in names:
            for token in list(self._by_sandbox.get(name, ())):
                yield name, token

    def find(
        self,
        path: str,
        operation: Operation,
        user: str,
        presented: str,
        expiration: int | None,
        sandbox: str | None,
    ) -> tuple[str, str] | None:
        """The (sandbox, access token) whose signature ``presented`` is, if any."""
        given = presented.encode()
        for name, token in self.candidates(sandbox):
            if hmac.compare_digest(given, signature(path, operation, user, token, expiration).encode()):
                return name, token
        return None
