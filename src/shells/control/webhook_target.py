"""Where a webhook may be delivered: its URL checked when it is registered, and its host resolved
and checked again at every attempt (a name can point elsewhere later), then connected to by the
address that was checked, so nothing resolves the name a second time behind the check."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ..domain.errors import InvalidRequest
from ..domain.limits import MAX_WEBHOOK_URL, WEBHOOK_RESOLVE_TIMEOUT_S
from ..domain.webhooks import forbidden_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OwnAddresses = Callable[[], Iterable[IPAddress | ipaddress.IPv4Network]]


class TargetRefused(Exception):
    """The URL's host is, or resolves to, an address no webhook may reach (message says which)."""


@dataclass(frozen=True)
class Target:
    """One checked destination: connect to ``url`` (the address in place of the name), sending
    ``host`` as the Host header and, for https, as the TLS server name."""

    url: str
    host: str
    server_name: str | None


def check_url(url: object) -> SplitResult:
    """The URL's syntax: http or https, a host, no credentials, not too long (else 400)."""
    if not isinstance(url, str) or not url or len(url) > MAX_WEBHOOK_URL:
        raise InvalidRequest(
            f"'url' must be an http:// or https:// URL of at most {MAX_WEBHOOK_URL} characters.",
            {"field": "url"},
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequest("'url' is not a valid URL.", {"field": "url"}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("'url' must start with http:// or https:// and name a host.", {"field": "url"})
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            "'url' must not carry credentials; the signature authenticates deliveries.", {"field": "url"}
        )
    if port == 0:
        raise InvalidRequest("'url' has port 0.", {"field": "url"})
    return parts


async def resolve(url: str, own: OwnAddresses) -> Target:
    """The checked destination of ``url``; raises ``TargetRefused`` if any address it resolves to is
    forbidden (a name with one bad address among good ones is refused: the connection could pick it)."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(hostname)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            async with asyncio.timeout(WEBHOOK_RESOLVE_TIMEOUT_S):
                infos = await asyncio.get_running_loop().getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise TargetRefused(f"{hostname} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    mine = list(own())
    for address in addresses:
        why = forbidden_address(address, mine)
        if why is not None:
            raise TargetRefused(f"{hostname} is {address}, {why}")
    chosen = addresses[0]
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{shown}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    host = parts.netloc.rpartition("@")[2]
    server_name = hostname if parts.scheme == "https" and literal is None else None
    return Target(f"{parts.scheme}://{netloc}{path}{query}", host, server_name)
