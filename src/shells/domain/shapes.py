"""Shapes: the named resource sizes a shell can have (vCPUs, memory, processes, /tmp and disk)."""

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
    disk_mib: int
    """What a container shell may write to its disk (root filesystem, /workspace and log together);
    what it shares with its template or snapshot is not counted."""

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 1024 * 1024

    @property
    def disk_bytes(self) -> int:
        return self.disk_mib * 1024 * 1024


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("s-1vcpu-512mb", 1, 512, 512, 128, 2048),
        Shape("s-1vcpu-1gb", 1, 1024, 1024, 256, 4096),
        Shape("s-2vcpu-2gb", 2, 2048, 2048, 512, 8192),
        Shape("s-4vcpu-4gb", 4, 4096, 4096, 1024, 16384),
        Shape("s-8vcpu-16gb", 8, 16384, 8192, 2048, 32768),
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
