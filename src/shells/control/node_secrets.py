"""Secrets for the egress proxies of a cluster's nodes (``node.egress``).

Every second the replica holding the singleton duties sends each node agent that runs an egress
proxy the instance's egress CA and, per shell the node holds, that shell's secrets opened (values
read now: a rotation or a deletion reaches the node within about that long), then collects the
uses the node's proxy counted and records them in the audit trail as one box does
(``secret.use``, door ``egress``). A node that does not answer keeps its last table until the next
pass."""

from __future__ import annotations

import logging
from collections import defaultdict

from ..domain.errors import ShellsError
from ..domain.secrets import Brokered
from ..node.remote import RemoteNetwork
from ..runtime.network.egress_ca import EgressCA
from ..store.secrets import SecretsStore
from .context import ControlContext
from .secrets import ShellEgress

log = logging.getLogger(__name__)

SECRETS_POLL_S = 1.0
"""How often each node is sent its shells' secrets (and its uses are collected)."""


class NodeSecrets:
    def __init__(self, ctx: ControlContext, egress: ShellEgress, ca: EgressCA) -> None:
        self.ctx, self.egress, self.ca = ctx, egress, ca
        self.records = SecretsStore(ctx.store)

    def _brokering(self) -> dict[str, RemoteNetwork]:
        fleet = self.ctx.fleet
        members = fleet.members.values() if fleet is not None else ()
        return {
            m.name: m.network for m in members if isinstance(m.network, RemoteNetwork) and m.network.egress
        }

    def send(self) -> None:
        """One pass: each brokering node's table sent, its uses collected."""
        nodes = self._brokering()
        tables: defaultdict[str, dict[str, list[Brokered]]] = defaultdict(dict)
        for shell_id in self.records.shells_with_secrets():
            shell = self.ctx.store.get_shell(shell_id)
            if shell is not None and shell.node in nodes:
                tables[shell.node][shell_id] = self.egress.brokered(shell_id)
        for name, network in nodes.items():
            try:
                network.set_secrets(self.ca.key_pem, self.ca.cert_pem, tables.get(name, {}))
                uses = network.drain_secret_uses()
            except ShellsError as exc:
                log.warning("node %s did not take its shells' secrets: %s", name, exc)
                continue
            for shell_id, host, names in uses:
                self.egress.used(shell_id, host, names)
