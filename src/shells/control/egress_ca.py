"""The instance's egress CA, one for every control replica (docs/secrets.md, docs/cluster.md).

A shell with secrets is given the CA's certificate when it is created (through any replica), and
the egress proxy that answers its TLS signs with the CA's key: on one box the server's own proxy, in
a cluster the proxy of the shell's node, sent the CA by whichever replica holds the singleton duties.
So the CA lives in the record: its certificate in the clear, its key sealed with the secrets key
the replicas share (``secret_box``). The first replica to start with no CA in the record writes
one; a replica that loses that race takes the winner's (insert if absent, then read back). The
one a one-box install kept in ``data_dir/egress-ca`` before is the one written, so the shells that
trust it keep working."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..domain.errors import RuntimeFailure
from ..runtime.network.egress_ca import EgressCA, new_ca_pem, read_ca_files
from ..store.egress_ca import EgressCAStore
from ..store.repository import Store
from .secret_box import SecretBox

log = logging.getLogger(__name__)

SEALED_AS = ("", "egress-ca")
"""The tenant and name the CA's key is sealed with (no tenant's secret can be named so)."""


def shared_ca_pem(store: Store, box: SecretBox, legacy: Path, instance: str) -> tuple[str, str]:
    """The record's egress CA (PEM key, certificate), written first if it has none: the one kept in
    ``legacy`` (a one-box install's ``data_dir/egress-ca``) when there is one, else a new one."""
    records = EgressCAStore(store)
    found = records.get()
    kept = read_ca_files(legacy)
    if found is None:
        key_pem, cert_pem = kept or new_ca_pem(instance)
        if records.add_if_absent(cert_pem, box.seal(*SEALED_AS, key_pem)):
            log.info("the egress CA %s is now the record's", "kept in " + str(legacy) if kept else "made")
        found = records.get()
        if found is None:
            raise RuntimeFailure("The egress CA was written to the record but cannot be read back.")
    cert_pem, sealed = found
    if kept is not None and kept[1] != cert_pem:
        log.warning("%s holds another egress CA than the record's; the record's is used", legacy)
    try:
        return box.open(*SEALED_AS, sealed), cert_pem
    except RuntimeFailure:
        raise RuntimeFailure(
            "The egress CA in the record does not open with this server's secrets key: every control "
            "replica must use the same key file (SHELLS_SECRETS_KEY_FILE)."
        ) from None


class InstanceEgressCA(EgressCA):
    """The record's egress CA (``shared_ca_pem``), read by ``load`` once the record is migrated
    (``Control.start``): before, nothing signs with it or sends it."""

    def __init__(self, store: Store, box: SecretBox, legacy: Path, instance: str) -> None:
        self._lock = threading.Lock()
        self._store, self._box, self._legacy, self._instance = store, box, legacy, instance

    def load(self) -> None:
        self._use(*shared_ca_pem(self._store, self._box, self._legacy, self._instance))
