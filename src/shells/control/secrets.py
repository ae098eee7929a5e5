"""Tenant secrets and their brokering at egress (docs/secrets.md).

``Secrets`` holds the use cases of every door: create, list, get, update (rotate), delete; none of
them ever answers a value. A shell created with secrets gets a placeholder per secret in its
environment (``give``), trusts the instance's egress CA (``trust_ca``), and its HTTPS goes through
``runtime.network.egress.EgressProxy``, which asks ``ShellEgress`` for the values per request, so a
rotation or a deletion applies to running and paused shells alike without restarting them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..domain.errors import (
    AlreadyExists,
    InvalidRequest,
    QuotaExceeded,
    RuntimeFailure,
    SecretNotFound,
    ShellsError,
)
from ..domain.execution import ExecSpec, collect
from ..domain.ids import new_id
from ..domain.limits import MAX_SECRETS_PER_TENANT, MAX_SHELL_SECRETS
from ..domain.principal import Principal, Scope
from ..domain.secrets import (
    Brokered,
    SecretRecord,
    check_header,
    check_secret_name,
    check_secret_value,
    host_matches,
    new_placeholder,
    parse_hosts,
)
from ..domain.shell import ShellRecord
from ..runtime.network.contract import InstanceNetwork
from ..runtime.network.egress_ca import EgressCA
from ..store.secrets import SecretsStore
from .auth import require
from .context import ControlContext
from .requests import reject_unknown
from .secret_box import SecretBox

log = logging.getLogger(__name__)

CA_FILE = "/usr/local/share/ca-certificates/shells-egress.crt"
_TRUST_SCRIPT = (
    # The way images.trust_host_cas does it for the host's CAs: a file where Debian's
    # update-ca-certificates finds it again, and appended to the bundle now.
    f"mkdir -p /usr/local/share/ca-certificates && cat > {CA_FILE} && "
    "b=/etc/ssl/certs/ca-certificates.crt && mkdir -p /etc/ssl/certs && "
    f'if ! grep -qxF "$(sed -n 2p {CA_FILE})" "$b" 2>/dev/null; then {{ echo; cat {CA_FILE}; }} >> "$b"; fi'
)


class Secrets:
    def __init__(self, ctx: ControlContext, box: SecretBox, ca: EgressCA) -> None:
        self.ctx, self.box, self.ca = ctx, box, ca
        self.records = SecretsStore(ctx.store)

    # the API ---------------------------------------------------------------------------------------
    def create(self, principal: Principal, body: dict[str, Any], door: str) -> SecretRecord:
        require(principal, Scope.TENANT_ADMIN)
        reject_unknown(body, {"name", "value", "hosts", "header"})
        name = check_secret_name(body.get("name"))
        value = check_secret_value(body.get("value"))
        hosts = parse_hosts(body.get("hosts"))
        header = check_header(body.get("header"))
        if self.records.get(principal.tenant, name) is not None:
            raise AlreadyExists(
                f"A secret named {name!r} exists already; update it with PUT /v1/secrets/{name}.",
                {"field": "name"},
            )
        if self.records.count(principal.tenant) >= MAX_SECRETS_PER_TENANT:
            raise QuotaExceeded(f"A tenant may hold at most {MAX_SECRETS_PER_TENANT} secrets.")
        now = datetime.now(UTC)
        rec = SecretRecord(new_id("sec"), principal.tenant, name, hosts, header, 1, now, now)
        draft = self._draft(principal, "secret.create", name, door, {"hosts": list(hosts)})
        self.records.add(rec, self.box.seal(principal.tenant, name, value), draft)
        return rec

    def list_secrets(self, principal: Principal) -> list[SecretRecord]:
        require(principal, Scope.READ)
        return self.records.list_secrets(principal.tenant)

    def get(self, principal: Principal, name: str) -> SecretRecord:
        require(principal, Scope.READ)
        rec = self.records.get(principal.tenant, name)
        if rec is None:
            raise SecretNotFound(f"There is no secret named {name!r}.", {"name": name})
        return rec

    def update(self, principal: Principal, name: str, body: dict[str, Any], door: str) -> SecretRecord:
        """Change the value (a rotation), the hosts or the header; what is left out stays."""
        require(principal, Scope.TENANT_ADMIN)
        reject_unknown(body, {"value", "hosts", "header"})
        if not body:
            raise InvalidRequest("Give at least one of 'value', 'hosts' or 'header'.", {"field": "value"})
        value = check_secret_value(body["value"]) if "value" in body else None
        hosts = parse_hosts(body["hosts"]) if "hosts" in body else None
        header = check_header(body.get("header"))
        changed = sorted(body)
        draft = self._draft(principal, "secret.update", name, door, {"changed": changed})
        rec = self.records.update(
            principal.tenant,
            name,
            hosts=hosts,
            header=header,
            set_header="header" in body,
            sealed=self.box.seal(principal.tenant, name, value) if value is not None else None,
            draft=draft,
        )
        if rec is None:
            raise SecretNotFound(f"There is no secret named {name!r}.", {"name": name})
        return rec

    def delete(self, principal: Principal, name: str, door: str) -> None:
        require(principal, Scope.TENANT_ADMIN)
        if not self.records.delete(
            principal.tenant, name, self._draft(principal, "secret.delete", name, door)
        ):
            raise SecretNotFound(f"There is no secret named {name!r}.", {"name": name})

    def _draft(
        self, principal: Principal, action: str, name: str, door: str, details: dict[str, Any] | None = None
    ) -> Any:
        return self.ctx.draft(
            principal, None, door=door, kind="secret", action=action, target=name, details=details
        )

    # shells ----------------------------------------------------------------------------------------
    def placeholders(self, principal: Principal, names: Sequence[str]) -> dict[str, str]:
        """A new shell's placeholder per secret (checked: they exist)."""
        if len(names) > MAX_SHELL_SECRETS:
            raise InvalidRequest(
                f"A shell may have at most {MAX_SHELL_SECRETS} secrets.", {"field": "secrets"}
            )
        missing = [n for n in names if self.records.get(principal.tenant, n) is None]
        if missing:
            raise InvalidRequest(
                f"No secret named {', '.join(missing)}; create it first with POST /v1/secrets.",
                {"field": "secrets", "missing": missing},
            )
        return {name: new_placeholder() for name in names}

    def give(self, shell_id: str, placeholders: dict[str, str]) -> None:
        self.records.give(shell_id, placeholders)

    def forget_shell(self, shell_id: str) -> None:
        self.records.forget_shell(shell_id)

    async def trust_ca(self, shell: ShellRecord) -> None:
        """Make the shell trust the egress CA, as its template trusts the host's CAs."""
        backend = self.ctx.backend(shell.runtime)
        spec = ExecSpec(argv=("/bin/sh", "-c", _TRUST_SCRIPT), stdin=self.ca.cert_pem.encode(), timeout_s=30)
        result = await collect(backend.exec(shell.id, spec))
        if result.exit.exit_code != 0:
            raise RuntimeFailure(
                "adding the egress CA to the shell's trust store failed: "
                + result.stderr[-300:].decode(errors="replace")
            )


class ShellEgress:
    """What the egress proxy asks (an ``EgressPolicy``): the host network knows addresses, the
    store knows which secrets a shell has, the box opens them, the audit trail records each use."""

    def __init__(self, ctx: ControlContext, host: InstanceNetwork, box: SecretBox) -> None:
        self.ctx, self.host, self.box = ctx, host, box
        self.records = SecretsStore(ctx.store)

    def client_of(self, address: ipaddress.IPv4Address) -> str | None:
        return self.host.client_of(address)

    def netns_of(self, shell_id: str) -> str | None:
        return self.host.netns_of(shell_id)

    def secrets_for(self, shell_id: str, host: str) -> list[Brokered]:
        return self.brokered(shell_id, host)

    def brokered(self, shell_id: str, host: str | None = None) -> list[Brokered]:
        """The shell's secrets, opened: those that may go to ``host``, or all of them for None."""
        tenant, sealed = self.records.sealed_for(shell_id)
        out: list[Brokered] = []
        for s in sealed:
            if host is not None and not any(host_matches(p, host) for p in s.record.hosts):
                continue
            try:
                value = self.box.open(tenant, s.record.name, s.sealed)
            except ShellsError as exc:
                log.error("secret %s of shell %s: %s", s.record.name, shell_id, exc.message)
                continue
            out.append(Brokered(s.record.name, s.record.hosts, s.record.header, s.placeholder, value))
        return out

    def used(self, shell_id: str, host: str, names: Sequence[str]) -> None:
        shell = self.ctx.store.get_shell(shell_id)
        for name in names:
            self.ctx.store.add_event(
                self.ctx.draft(
                    None,
                    shell,
                    door="egress",
                    kind="secret",
                    action="secret.use",
                    target=name,
                    details={"host": host, "secret": name},
                )
            )
