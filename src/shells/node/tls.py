"""TLS on the node RPC (optional): mutual authentication by certificates of the cluster's own CA, on
top of the per-cluster secret every call is signed with (``node.wire``).

Three settings name PEM files, the same three on a node agent and on a control plane
(``SHELLS_NODE_TLS_CERT_FILE``, ``SHELLS_NODE_TLS_KEY_FILE``, ``SHELLS_NODE_TLS_CA_FILE``; all or none).
A node with them speaks only TLS and completes a handshake only with a caller whose certificate that
CA signed; a control plane with them calls every node over TLS (an ``http://`` address is called as
``https://``), presents its certificate, and trusts a node only if that CA signed the node's. The CA
is the cluster's own: every certificate it signs is a member, so names are not checked (nodes are
found by the address on their Lease, which a certificate made before it cannot know). See
docs/cluster.md for making and mounting them.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..domain.errors import InvalidRequest
from ..settings import Settings


@dataclass(frozen=True)
class NodeTls:
    cert: Path
    """This process's certificate (PEM, its chain after it)."""
    key: Path
    """Its private key (PEM)."""
    ca: Path
    """The cluster's CA (PEM): the only issuer trusted for the other side."""

    def server_options(self) -> dict[str, Any]:
        """uvicorn's arguments for a node agent that requires a client certificate of the CA."""
        return {
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
            "ssl_ca_certs": str(self.ca),
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
        }

    def client_context(self) -> ssl.SSLContext:
        """What a control plane calls nodes with: its certificate, and only the CA's trusted."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False  # the CA is the cluster's own (module docstring)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def node_tls(settings: Settings) -> NodeTls | None:
    """The node RPC's TLS files from ``settings``; None without any; a typed error for some only,
    or for one that cannot be read."""
    files = (settings.node_tls_cert_file, settings.node_tls_key_file, settings.node_tls_ca_file)
    if not any(files):
        return None
    cert, key, ca = files
    if cert is None or key is None or ca is None:
        raise InvalidRequest(
            "TLS on the node RPC needs all three of SHELLS_NODE_TLS_CERT_FILE, SHELLS_NODE_TLS_KEY_FILE "
            "and SHELLS_NODE_TLS_CA_FILE (or none of them)."
        )
    tls = NodeTls(cert, key, ca)
    try:
        tls.client_context()  # reads and checks all three
    except (OSError, ssl.SSLError) as exc:
        raise InvalidRequest(f"The node RPC's TLS files cannot be used: {exc}.") from None
    return tls


def over_tls(url: str) -> str:
    """``url`` with the ``https`` scheme (a control plane with TLS never calls a node in the clear)."""
    return urlunsplit(urlsplit(url)._replace(scheme="https"))
