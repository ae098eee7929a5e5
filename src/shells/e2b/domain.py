"""The E2B door's domain mode: E2B code that sets ``E2B_DOMAIN=D`` calls ``https://api.D`` for the
control plane and ``https://{port}-{sandbox id}.D`` for a sandbox (envd on port 49983, signed file
URLs, ``get_host``). The door's listener then speaks TLS with the operator's certificate for ``*.D``,
and a request whose Host names a sandbox is routed as if it carried E2B's sandbox headers: the Host
wins over any header, as on E2B's own proxy."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

from starlette.types import Scope

from ..domain.errors import InvalidRequest
from ..settings import Settings, env_var

DOMAIN_NAME = re.compile(
    r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
ROUTING_HEADERS = (b"e2b-sandbox-id", b"e2b-sandbox-port")


@dataclass(frozen=True)
class SandboxHost:
    port: str
    sandbox: str


def sandbox_host(host: str, domain: str) -> SandboxHost | None:
    """The sandbox and port a Host header ``{port}-{id}.{domain}[:listener port]`` names, else None."""
    name = host.rpartition(":")[0] if ":" in host else host
    name = name.lower().rstrip(".")
    label, dot, rest = name.partition(".")
    port, dash, sandbox = label.partition("-")
    if rest != domain or not dot or not dash or not port.isdigit() or not sandbox:
        return None
    return SandboxHost(port, sandbox)


def routed_by_host(scope: Scope, domain: str) -> Scope:
    """The request with E2B's sandbox headers set from its Host when the Host names a sandbox."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
    target = sandbox_host(host, domain)
    if target is None:
        return scope
    kept = [(k, v) for k, v in headers if k not in ROUTING_HEADERS]
    routing = [(ROUTING_HEADERS[0], target.sandbox.encode()), (ROUTING_HEADERS[1], target.port.encode())]
    return {**scope, "headers": kept + routing}


def door_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the door's listener in domain mode (None in header mode), or a sentence
    saying which setting to fix."""
    domain = settings.e2b_domain
    if not domain:
        return None
    if not DOMAIN_NAME.match(domain):
        raise InvalidRequest(
            f"--e2b-domain ({env_var('e2b_domain')}) must be a lowercase DNS name such as e2b.example.com."
        )
    if not settings.e2b_port:
        raise InvalidRequest("--e2b-domain needs the door's port: add --e2b-port (SHELLS_E2B_PORT).")
    cert, key = settings.e2b_tls_cert_file, settings.e2b_tls_key_file
    if cert is None or key is None:
        raise InvalidRequest(
            f"Domain mode serves TLS: set {env_var('e2b_tls_cert_file')} and {env_var('e2b_tls_key_file')} "
            f"to the PEM certificate for *.{domain} (and api.{domain}) and its key."
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidRequest(
            f"The E2B door's certificate {cert} or key {key} could not be loaded: {exc}."
        ) from None
    context.set_alpn_protocols(["http/1.1"])  # the door speaks HTTP/1.1 only; E2B's SDK asks ALPN
    return context
