"""DNS for template builds that run while the host is being prepared, before any server serves it.

Build shells have unrestricted outbound network, and every networked shell resolves names through the
instance's resolver on its gateway. During ``prepare`` (``shells prepare``, or a server's start-up
before its control plane runs the real resolver) nothing listens there yet, so this serves the same
resolver with a policy that answers build shells only, for as long as the preparation runs.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from ...domain.network import NetworkMode
from ..network.dataplane import HostNetwork
from ..network.dns_upstream import IPAddress, configured_upstreams
from ..network.resolver import DnsResolver, Peer
from .builder import BUILD_SHELL_PREFIX

log = logging.getLogger(__name__)


class BuildShellDns:
    """A ``ResolverPolicy``: build shells may resolve every name; any other client gets nothing."""

    def __init__(self, host: HostNetwork) -> None:
        self.host = host

    def client_of(self, address: IPAddress) -> str | None:
        return self.host.client_of(address)

    def allowed_names(self, client: str) -> Sequence[str]:
        policy = self.host.policy_of(client)
        building = client.startswith(BUILD_SHELL_PREFIX + "_")
        if not building or policy is None or policy.mode is not NetworkMode.INTERNET or policy.restricted:
            return ()
        return ("*",)

    def peers(self, client: str) -> Iterable[Peer]:
        return ()

    async def record_answer(
        self, client: str, patterns: Sequence[str], name: str, addresses: Sequence[IPAddress], ttl_s: int
    ) -> None:
        """Nothing to record: an unrestricted shell may reach every public address already."""

    async def record_refusal(self, client: str, name: str, qtype: str) -> None:
        log.info("refused a DNS question from %s during preparation: %s %s", client, name, qtype)


@asynccontextmanager
async def dns_for_builds(host: HostNetwork) -> AsyncIterator[None]:
    """Serve build shells' DNS on the instance's gateway while the block runs (``host`` prepared)."""
    resolver = DnsResolver(BuildShellDns(host), configured_upstreams(host.settings.dns_upstreams))
    try:
        for address in host.gateway_addresses():
            try:
                await resolver.listen(address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                log.info("a resolver already serves %s; template builds use it", address)
        yield
    finally:
        await resolver.close()
