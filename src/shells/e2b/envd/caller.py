"""Who an in-sandbox (envd) call comes from and acts as: the sandbox of ``E2b-Sandbox-Id``, the
principal behind its access token (``X-Access-Token``), and the Linux user named by
``Authorization: Basic base64(user:)`` (E2B's default user ``user`` when absent). A signed file URL
(``signature`` in the query, no token header) names all three through its signature instead."""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from ...domain.errors import InvalidRequest
from ...domain.execution import is_user_name
from ...domain.principal import Principal
from ..access import DoorAccess
from ..ids import shell_id
from ..sandboxes import DEFAULT_USER
from ..signing import Operation

ROOT = "root"


@dataclass(frozen=True)
class Caller:
    principal: Principal
    sandbox: str
    shell_id: str
    user: str

    @property
    def home(self) -> str:
        return "/root" if self.user == ROOT else f"/home/{self.user}"

    @property
    def run_as(self) -> str | None:
        """The ``user`` of an exec: None is root, the agent's own."""
        return None if self.user == ROOT else self.user

    def path(self, path: str) -> str:
        """A path as envd reads it: relative ones start at the user's home."""
        if not path:
            raise InvalidRequest("'path' is required.", {"field": "path"})
        return path if path.startswith("/") else posixpath.join(self.home, path)


def _user(headers: Mapping[str, str], explicit: str | None) -> str:
    user = explicit
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if user is None and scheme.lower() == "basic":
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("The Authorization header is not Basic base64('user:').") from None
    return _valid_user(user or DEFAULT_USER)


def _valid_user(user: str) -> str:
    if not is_user_name(user):
        raise InvalidRequest(f"{user[:40]!r} is not a Linux user name.", {"field": "username"})
    return user


def caller(access: DoorAccess, headers: Mapping[str, str], username: str | None = None) -> Caller:
    sandbox = headers.get("e2b-sandbox-id", "")
    target = shell_id(sandbox)
    principal = access.sandbox_token(sandbox, headers.get("x-access-token"))
    return Caller(principal, sandbox, target, _user(headers, username))


def _expiration(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(
            "'signature_expiration' must be a Unix time in seconds.", {"field": "signature_expiration"}
        ) from None


def signed_caller(
    access: DoorAccess, headers: Mapping[str, str], query: Mapping[str, str], operation: Operation
) -> Caller:
    """The caller of a signed ``/files`` URL. The user is the signed ``username`` only (never the
    Authorization header, which would let a URL signed for ``user`` act as root)."""
    named = query.get("username")
    sandbox, principal = access.signed(
        query.get("path", ""),
        operation,
        named or "",
        query.get("signature", ""),
        _expiration(query.get("signature_expiration")),
        headers.get("e2b-sandbox-id"),
    )
    return Caller(principal, sandbox, shell_id(sandbox), _valid_user(named or DEFAULT_USER))
