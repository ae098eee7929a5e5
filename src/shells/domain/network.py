"""Network modes and the policy a shell is created with."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NetworkMode(StrEnum):
    SEALED = "sealed"  # no interface that works, not even loopback
    LOCALHOST = "localhost"  # loopback only
    INTERNET = "internet"  # outbound through the host, optionally limited to an allowlist


@dataclass(frozen=True)
class NetworkPolicy:
    mode: NetworkMode = NetworkMode.SEALED
    allow: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode.value, "allow": list(self.allow)}
