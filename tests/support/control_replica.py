"""One control-plane replica in a process of its own, for cluster tests that kill one with SIGKILL:
the in-process instance (``inprocess.build``: the fake node, no root) over the PostgreSQL record
and the Kubernetes API named in its arguments, served by uvicorn on a loopback port.

    python -m tests.support.control_replica ROOT PORT DATABASE_URL KUBE_URL TOKEN_FILE CA_FILE LEASE_S \
        KEY_FILE

``KEY_FILE``: the secrets key the replicas share (as a real deployment's replicas do), so what one
seals (a webhook's secret, the record's egress CA) the other opens.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from .inprocess import build


def main(argv: list[str]) -> None:
    root, port, database_url, kube_url, token_file, ca_file, lease_s, key_file = argv
    instance = build(
        Path(root),
        database_url=database_url,
        kube_url=kube_url,
        kube_token_file=Path(token_file),
        kube_ca_file=Path(ca_file),
        lease_duration_s=float(lease_s),
        secrets_key_file=Path(key_file),
    )
    uvicorn.Server(uvicorn.Config(instance.app, host="127.0.0.1", port=int(port), log_level="info")).run()


if __name__ == "__main__":
    main(sys.argv[1:])
