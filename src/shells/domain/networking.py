"""Records of the networking features the control plane keeps: private networks and exposed ports.
(The per-shell policy, its rules, ``PrivateNetwork`` as the host sees it and ``BlockedAttempt`` live
in ``network``.)"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network
from typing import Any

from .errors import InvalidRequest
from .network import PrivateNetwork

NETWORK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
MAX_BLOCKED_PER_SHELL = 1000
"""Distinct destinations kept per shell; attempts to further new destinations are counted in one
overflow row (destination ``*``), so a flood of random destinations cannot grow the table."""
OVERFLOW_DESTINATION = "*"


def check_network_name(name: object) -> str:
    if not isinstance(name, str) or not NETWORK_NAME.match(name):
        raise InvalidRequest(
            "A network name is 1-31 lowercase letters, digits or '-', starting with a letter "
            "(it becomes a DNS suffix inside the shells).",
            {"field": "name"},
        )
    return name


@dataclass(frozen=True)
class NetworkRecord:
    """A private network: the shells on it reach each other by IP and by name, nothing else does."""

    id: str
    tenant: str
    name: str
    cidr: str
    created_at: datetime
    members: dict[str, str] = field(default_factory=dict)
    """shell id → its address on this network."""

    def private(self) -> PrivateNetwork:
        """The network as the host sees it."""
        return PrivateNetwork(self.id, self.name, IPv4Network(self.cidr))

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "cidr": self.cidr,
            "shells": [{"id": sid, "address": addr} for sid, addr in sorted(self.members.items())],
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class ExposedPort:
    """One port of a shell reachable through the host's ingress proxy."""

    shell_id: str
    tenant: str
    port: int
    public: bool
    token_hash: str | None
    created_at: datetime

    def to_public(self, url: str, token: str | None = None) -> dict[str, Any]:
        """``token`` is only ever passed when the port is exposed: it is shown once."""
        return {
            "port": self.port,
            "url": url,
            "public": self.public,
            "token": token,
            "created_at": self.created_at.isoformat(),
        }


def check_port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidRequest("'port' must be a TCP port number from 1 to 65535.", {"field": "port"})
    return value
