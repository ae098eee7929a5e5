"""The dataplane's own bookkeeping, one JSON file per object under ``<run_dir>/network``.

The kernel keeps the real state (links, routes, nft objects) across a server restart; these files
let a new server process know which of those objects belong to which shell. Each write goes to a
temporary file that is renamed into place, so a crash leaves the old or the new version, never half.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shells.domain.network import NetworkAccess, NetworkMode, PrivateNetwork


@dataclass(frozen=True)
class Membership:
    """A shell's place on one private network: its port index (ethN) and address there."""

    net_id: str
    index: int
    address: ipaddress.IPv4Address
    hostname: str


@dataclass
class ShellNet:
    host_id: str
    slot: int
    netns: str
    policy: NetworkAccess
    memberships: dict[str, Membership] = field(default_factory=dict)
    blocked_seen: dict[str, int] = field(default_factory=dict)
    """Packets per blocked-set key at the last drain (see :mod:`.blocked`)."""
    brokered: bool = False
    """Its HTTPS goes through the egress proxy (see :mod:`.egress`)."""

    @property
    def uplink_open(self) -> bool:
        return self.policy.mode is NetworkMode.INTERNET

    @property
    def ports_open(self) -> bool:
        """Sealed shells have no interface at all; the other modes have their private networks."""
        return self.policy.mode is not NetworkMode.SEALED

    def to_json(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "slot": self.slot,
            "netns": self.netns,
            "policy": self.policy.to_dict(),
            "memberships": {
                m.net_id: {"index": m.index, "address": str(m.address), "hostname": m.hostname}
                for m in self.memberships.values()
            },
            "blocked_seen": self.blocked_seen,
            "brokered": self.brokered,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShellNet:
        policy = data["policy"]
        return cls(
            host_id=data["host_id"],
            slot=int(data["slot"]),
            netns=data["netns"],
            policy=NetworkAccess(NetworkMode(policy["mode"]), tuple(policy["allow"])),
            memberships={
                net_id: Membership(
                    net_id, int(m["index"]), ipaddress.IPv4Address(m["address"]), m["hostname"]
                )
                for net_id, m in data["memberships"].items()
            },
            blocked_seen=data.get("blocked_seen", {}),
            brokered=bool(data.get("brokered", False)),
        )


class Ledger:
    """Reads and writes the files; knows nothing about the kernel."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shells_dir = root / "shells"
        self.networks_dir = root / "networks"

    def ensure(self) -> None:
        for d in (self.shells_dir, self.networks_dir):
            d.mkdir(parents=True, exist_ok=True)

    def read_range(self) -> ipaddress.IPv4Network | None:
        path = self.root / "instance.json"
        if not path.exists():
            return None
        return ipaddress.IPv4Network(json.loads(path.read_text(encoding="utf-8"))["cidr"])

    def write_range(self, cidr: ipaddress.IPv4Network) -> None:
        _write(self.root / "instance.json", {"cidr": str(cidr)})

    def shells(self) -> list[ShellNet]:
        return [ShellNet.from_json(_read(p)) for p in sorted(self.shells_dir.glob("*.json"))]

    def save_shell(self, shell: ShellNet) -> None:
        _write(self.shells_dir / f"{shell.host_id}.json", shell.to_json())

    def drop_shell(self, host_id: str) -> None:
        (self.shells_dir / f"{host_id}.json").unlink(missing_ok=True)

    def networks(self) -> list[PrivateNetwork]:
        return [
            PrivateNetwork(d["id"], d["name"], ipaddress.IPv4Network(d["cidr"]))
            for d in (_read(p) for p in sorted(self.networks_dir.glob("*.json")))
        ]

    def save_network(self, net: PrivateNetwork) -> None:
        _write(self.networks_dir / f"{net.id}.json", net.to_dict())

    def drop_network(self, net_id: str) -> None:
        (self.networks_dir / f"{net_id}.json").unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
