"""The shells' DNS resolver's policy (a ``ResolverPolicy``) over an instance network: the network
knows addresses, policies and memberships; the caller names private networks and keeps the refused
questions. The control plane of one box and a node agent both serve it this way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import anyio

from shells.domain.network import AllowKind, BlockedAttempt, IPAddress, NetworkMode
from shells.domain.networking import OVERFLOW_DESTINATION

from .contract import InstanceNetwork
from .resolver import Peer

MAX_PENDING_REFUSALS = 10_000


class RefusalLog:
    """Refused DNS questions since the last drain, aggregated per shell and name (logged like a
    dropped connection, protocol ``dns``); past ``MAX_PENDING_REFUSALS`` names they are counted
    under one overflow entry per shell."""

    def __init__(self) -> None:
        self._refusals: dict[tuple[str, str], BlockedAttempt] = {}

    def note(self, host_id: str, name: str, qtype: str) -> None:
        now = datetime.now(UTC)
        key = (host_id, f"{name} ({qtype})")
        known = self._refusals.get(key)
        if known is None and len(self._refusals) >= MAX_PENDING_REFUSALS:
            key = (host_id, OVERFLOW_DESTINATION)  # a flood of distinct names: counted, not kept
            known = self._refusals.get(key)
        fresh = BlockedAttempt(key[1], 53, "dns", 1, now, now)
        self._refusals[key] = fresh if known is None else known.merged(fresh)

    def drain(self) -> list[tuple[str, BlockedAttempt]]:
        drained = [(host_id, attempt) for (host_id, _), attempt in self._refusals.items()]
        self._refusals = {}
        return drained


class ShellDns:
    """What the DNS resolver asks about its clients: ``network_name`` names a private network by
    its id (None: not one of this instance's), refusals go to ``refusals``."""

    def __init__(
        self, host: InstanceNetwork, network_name: Callable[[str], str | None], refusals: RefusalLog
    ) -> None:
        self.host = host
        self.network_name = network_name
        self.refusals = refusals

    def client_of(self, address: IPAddress) -> str | None:
        return self.host.client_of(address)

    def allowed_names(self, client: str) -> Sequence[str]:
        policy = self.host.policy_of(client)
        if policy is None or policy.mode is not NetworkMode.INTERNET:
            return ()
        if not policy.restricted:
            return ("*",)
        return [r.target for r in policy.rules if r.kind in (AllowKind.HOST, AllowKind.WILDCARD)]

    def peers(self, client: str) -> Iterable[Peer]:
        for net_id in self.host.memberships(client):
            name = self.network_name(net_id)
            if name is None:
                continue
            for hostname, address in self.host.peers(net_id).items():
                yield Peer(name, hostname, address)

    async def record_answer(
        self, client: str, patterns: Sequence[str], name: str, addresses: Sequence[IPAddress], ttl_s: int
    ) -> None:
        policy = self.host.policy_of(client)
        if policy is None or not policy.restricted:
            return  # every public address is allowed already
        for rule in policy.rules:
            if rule.target in patterns:
                await anyio.to_thread.run_sync(self.host.allow_resolved, client, rule, addresses, ttl_s)

    async def record_refusal(self, client: str, name: str, qtype: str) -> None:
        self.refusals.note(client, name, qtype)
