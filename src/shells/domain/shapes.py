"""Shapes: the named resource sizes a shell can have (vCPUs and memory)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest


@dataclass(frozen=True)
class Shape:
    name: str
    vcpus: float
    memory_mib: int
    pids_limit: int
    tmpfs_mib: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("s-1vcpu-512mb", 1, 512, 512, 128),
        Shape("s-1vcpu-1gb", 1, 1024, 1024, 256),
        Shape("s-2vcpu-2gb", 2, 2048, 2048, 512),
        Shape("s-4vcpu-4gb", 4, 4096, 4096, 1024),
        Shape("s-8vcpu-16gb", 8, 16384, 8192, 2048),
    )
}
DEFAULT_SHAPE = "s-1vcpu-512mb"


def get_shape(name: str) -> Shape:
    try:
        return SHAPES[name]
    except KeyError:
        raise InvalidRequest(
            f"Unknown shape '{name}'. Choose one of: {', '.join(SHAPES)}.", {"field": "shape"}
        ) from None
