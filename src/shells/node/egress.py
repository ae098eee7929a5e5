"""A node agent's egress proxy: secrets swapped into its shells' HTTPS, served from this machine.

A shell with secrets has its TCP to port 443 sent by its node's dataplane to the egress proxy on the
node's gateway (``runtime.network.egress``, the same proxy one box runs). The secrets are the
control plane's: the replica holding the singleton duties opens them and sends each node, over the
authenticated node RPC, the instance's egress CA and, per shell the node holds, the secrets that
shell may use (``set_secrets``) about once a second; the node keeps them in memory only. Each use is
kept here (capped) until the control plane collects it for the audit trail (``drain_uses``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..domain.errors import InvalidRequest
from ..domain.ids import looks_like
from ..domain.limits import NODE_MAX_SECRET_USES, NODE_MAX_SECRETS
from ..domain.secrets import Brokered, host_matches
from ..runtime.network.contract import InstanceNetwork
from ..runtime.network.egress import EgressProxy, upstream_context
from ..runtime.network.egress_ca import EgressCA

SecretUse = tuple[str, str, list[str]]
"""One brokered request: the shell, the host, the secrets put into it."""


class NodeSecrets:
    """The ``EgressPolicy`` of a node's proxy: addresses from the node's network, secrets from the
    table the control plane sent last."""

    def __init__(self, network: InstanceNetwork) -> None:
        self.network = network
        self._table: dict[str, list[Brokered]] = {}
        self._uses: list[SecretUse] = []

    def set_secrets(self, table: Mapping[str, Sequence[Brokered]]) -> int:
        """Take ``table`` (shell id → its secrets) as the whole table; returns how many secrets."""
        found: dict[str, list[Brokered]] = {}
        for shell_id, secrets in table.items():
            if not looks_like("sh", shell_id) or not all(isinstance(b, Brokered) for b in secrets):
                raise InvalidRequest(f"Not a shell's secrets: {shell_id!r}.")
            found[shell_id] = list(secrets)
        if sum(len(s) for s in found.values()) > NODE_MAX_SECRETS:
            raise InvalidRequest(f"At most {NODE_MAX_SECRETS} brokered secrets per node.")
        self._table = found
        return sum(len(s) for s in found.values())

    def drain_uses(self) -> list[SecretUse]:
        uses, self._uses = self._uses, []
        return uses

    # EgressPolicy ---------------------------------------------------------------------------------
    def client_of(self, address: ipaddress.IPv4Address) -> str | None:
        return self.network.client_of(address)

    def netns_of(self, shell_id: str) -> str | None:
        return self.network.netns_of(shell_id)

    def secrets_for(self, shell_id: str, host: str) -> list[Brokered]:
        return [b for b in self._table.get(shell_id, ()) if any(host_matches(p, host) for p in b.hosts)]

    def used(self, shell_id: str, host: str, names: Sequence[str]) -> None:
        if len(self._uses) < NODE_MAX_SECRET_USES:  # past the cap until collected: the use is not kept
            self._uses.append((shell_id, host, list(names)))


class NodeEgress:
    """The node's egress proxy on its gateways, with the CA the control plane sends (the node's own
    one in ``directory`` until then, never used: no secret is known before the first table)."""

    def __init__(
        self, network: InstanceNetwork, directory: Path, instance: str, extra_cafile: str | None
    ) -> None:
        self.network, self.directory = network, directory
        self.secrets = NodeSecrets(network)
        self.proxy = EgressProxy(self.secrets, EgressCA(directory, instance), upstream_context(extra_cafile))

    def set_secrets(self, ca_key: str, ca_cert: str, table: Mapping[str, Sequence[Brokered]]) -> int:
        """The instance's egress CA (PEM key and certificate) and the table of its shells' secrets."""
        if ca_cert != self.proxy.ca.cert_pem:
            key, cert = self.directory / "ca.key", self.directory / "ca.crt"
            key.write_text(ca_key)
            key.chmod(0o600)
            cert.write_text(ca_cert)
            self.proxy.ca = EgressCA(self.directory, "")
        return self.secrets.set_secrets(table)

    async def start(self) -> None:
        for address in self.network.gateway_addresses():
            await self.proxy.listen(address)

    async def close(self) -> None:
        await self.proxy.close()


__all__ = ["NodeEgress", "NodeSecrets", "SecretUse"]
