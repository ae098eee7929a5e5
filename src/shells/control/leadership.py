"""Which control-plane replica runs the singleton duties: the holder of the ``shells-control``
Lease (``cluster.lease``), when a Kubernetes API is configured. ``Background.leader`` reads
``holds()``, so a replica that loses the Lease (it died, or it cannot reach the API server) stops
running the duties before another can start them, and another starts them within one lease period.
On one box (no ``kube_url``) there is no Lease and the one process runs everything."""

from __future__ import annotations

import os
import secrets
import socket

from ..cluster.kube import Kube, KubeConfig
from ..cluster.lease import LeaseHolder, LeaseTiming
from ..settings import Settings

CONTROL_LEASE = "shells-control"


def kube_config(settings: Settings) -> KubeConfig | None:
    """The Kubernetes API of this instance (``kube_url`` with its token and CA files), or None: one
    box. Only an explicit URL turns it on (deploy/ sets the pod's service account), so a one-box
    install that happens to run inside a pod keeps running every duty itself."""
    if not settings.kube_url:
        return None
    return KubeConfig(
        url=settings.kube_url,
        token="",
        token_file=str(settings.kube_token_file) if settings.kube_token_file else None,
        ca_file=str(settings.kube_ca_file) if settings.kube_ca_file else None,
        namespace=settings.kube_namespace,
    )


def lease_timing(duration_s: float) -> LeaseTiming:
    """Renewal every sixth of the lease, acting stopped after two thirds of it without a renewal."""
    return LeaseTiming(duration_s=duration_s, renew_deadline_s=duration_s * 2 / 3, retry_s=duration_s / 6)


class Leadership:
    def __init__(self, config: KubeConfig, duration_s: float) -> None:
        self.kube = Kube(config)
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        """Unique per process: a restarted replica is a new contender, never the old holder."""
        self.holder = LeaseHolder(
            self.kube,
            CONTROL_LEASE,
            self.identity,
            lease_timing(duration_s),
            labels={"app.kubernetes.io/part-of": "shells", "shells.dev/role": "control"},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Leadership | None:
        config = kube_config(settings)
        return None if config is None else cls(config, settings.lease_duration_s)

    def holds(self) -> bool:
        return self.holder.holds()

    def start(self) -> None:
        self.holder.start()

    async def stop(self) -> None:
        """Release the Lease (the next replica takes the duties at once) and close the client."""
        await self.holder.stop(release=True)
        await self.kube.aclose()
