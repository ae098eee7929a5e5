"""Tenant secrets brokered at egress: names, host patterns, the record, the placeholder. Pure.

A secret never enters a shell. A shell created with it gets an opaque *placeholder* in its
environment; the host's egress proxy swaps the placeholder for the value in HTTPS requests to one of
the secret's hosts, and only there (docs/secrets.md).
"""

from __future__ import annotations

import re
import secrets as _random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InvalidRequest
from .limits import MAX_SECRET_HOSTS, MAX_SECRET_VALUE_BYTES

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")  # an HTTP token (RFC 9110)
PLACEHOLDER_PREFIX = "shells-secret-"


def check_secret_name(name: object, field: str = "name") -> str:
    """A secret's name is also the environment variable that holds its placeholder."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            f"'{field}' must be an environment variable name: a letter or '_' then up to 63 letters, "
            "digits or '_' (e.g. GITHUB_TOKEN).",
            {"field": field},
        )
    return name


def parse_host_pattern(text: object) -> str:
    """``api.github.com`` (that name only) or ``*.example.org`` (every name below example.org, not
    example.org itself). Lower-cased, without a trailing dot. A bare ``*``, an address or a pattern
    with a wildcard anywhere else is refused: a secret goes to hosts the tenant named."""
    if not isinstance(text, str):
        raise InvalidRequest("'hosts' must be a list of host names.", {"field": "hosts"})
    name = text.strip().lower().rstrip(".")
    wildcard = name.startswith("*.")
    labels = (name[2:] if wildcard else name).split(".")
    if (
        len(name) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidRequest(
            f"'hosts' entry {text!r} is not a host name: use a name such as api.github.com or a "
            "wildcard such as *.example.org (a bare '*' and IP addresses are not accepted).",
            {"field": "hosts"},
        )
    return name


def parse_hosts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'hosts' must name at least one host the secret may be sent to, e.g. [\"api.github.com\"].",
            {"field": "hosts"},
        )
    if len(value) > MAX_SECRET_HOSTS:
        raise InvalidRequest(f"'hosts' holds at most {MAX_SECRET_HOSTS} entries.", {"field": "hosts"})
    return tuple(dict.fromkeys(parse_host_pattern(h) for h in value))


def check_secret_value(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest("'value' must be a non-empty string.", {"field": "value"})
    if len(value.encode()) > MAX_SECRET_VALUE_BYTES:
        raise InvalidRequest(f"'value' is longer than {MAX_SECRET_VALUE_BYTES} bytes.", {"field": "value"})
    if any(c in value for c in "\r\n\0"):
        raise InvalidRequest(
            "'value' may not hold CR, LF or NUL (it goes into HTTP headers).", {"field": "value"}
        )
    return value


def check_header(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HEADER.match(value):
        raise InvalidRequest(
            "'header' must be an HTTP header name such as Authorization.", {"field": "header"}
        )
    return value.lower()


def host_matches(pattern: str, host: str) -> bool:
    """Whether ``host`` (a lower-case name, as a TLS client sends it) is covered by ``pattern``."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def new_placeholder() -> str:
    """An opaque stand-in for a secret's value (~190 bits), unique per shell and secret."""
    return PLACEHOLDER_PREFIX + _random.token_hex(24)


@dataclass(frozen=True)
class SecretRecord:
    """A secret without its value (the value only ever leaves the store to the egress proxy)."""

    id: str
    tenant: str
    name: str
    hosts: tuple[str, ...]
    header: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "hosts": list(self.hosts),
            "header": self.header,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Brokered:
    """One secret as the egress proxy uses it for one shell: where it may go, what stands for it in
    the shell, and the value."""

    name: str
    hosts: tuple[str, ...]
    header: str | None
    placeholder: str
    value: str
