"""One settings object for the whole server, read from ``SHELLS_*`` environment variables."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .domain.errors import InvalidRequest


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "shells"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shells"


@dataclass(frozen=True)
class Settings:
    """Everything an instance needs to know. Two instances must differ in ``data_dir``."""

    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    region: str = "local"
    database_url: str | None = None
    warm_pool_size: int = 2
    pool_image_gib: int = 64
    btrfs_dir: Path | None = None
    host_ca_dir: Path = Path("/usr/local/share/ca-certificates")
    """The CA certificates (``*.crt``) this host trusts locally, which templates trust too when they
    are imported into this instance (``SHELLS_HOST_CA_DIR``)."""
    agent_ready_timeout_s: float = 20.0
    idle_timeout_s: int = 900
    """Default seconds without exec, terminal or port traffic before a shell of a class that can
    pause pauses itself (``SHELLS_IDLE_TIMEOUT_S``; 0 never). A create may ask for another."""
    quota_max_shells: int = 20
    quota_max_vcpus: float = 16.0
    quota_max_memory_mib: int = 32768
    quota_max_snapshots: int = 100
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    """Defaults of every tenant's limits; ``POST /v1/tenants`` can set others per tenant."""
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8081
    ingress_domain: str = "localhost"
    """Exposed ports answer at ``http://{port}-{shell_id}.{ingress_domain}:{ingress_port}/``."""
    dns_upstreams: tuple[str, ...] = ()
    """Where the shells' DNS resolver forwards allowed names (``SHELLS_DNS_UPSTREAMS``, comma-separated
    ``IP`` or ``IP:PORT``); empty uses the host's /etc/resolv.conf."""
    mcp_allowed_hosts: tuple[str, ...] = ()
    """Host names (besides loopback and ``host``) under which MCP clients reach ``/api/agent/invoke``
    (``SHELLS_MCP_ALLOWED_HOSTS``, comma-separated); other Host or Origin headers are refused."""
    network_cidr: ipaddress.IPv4Network | None = None
    """The IPv4 range of this instance's shells (``SHELLS_NETWORK_CIDR``); None picks a free /16 of
    10.128.0.0/9 (see ``runtime/network/addressing.py``)."""
    rate_vcpu_hour: Decimal = Decimal("0.0504")
    rate_gib_hour: Decimal = Decimal("0.0162")
    rate_container_factor: Decimal = Decimal("0.5")
    rate_wasm_factor: Decimal = Decimal("0.25")
    rate_snapshot_gib_month: Decimal = Decimal("0.05")
    """Prices (docs/pricing.md): microvm per vCPU-hour and per GiB-hour (``SHELLS_RATE_VCPU_HOUR``,
    ``SHELLS_RATE_GIB_HOUR``), container and wasm as factors of it, snapshot storage per GiB-month."""
    free_tier_usd: Decimal = Decimal(0)
    """Every tenant's monthly free allowance unless set for the tenant (``SHELLS_FREE_TIER_USD``)."""
    budget_check_s: float = 10.0
    """How often budget caps are checked against the month's cost (``SHELLS_BUDGET_CHECK_S``)."""
    metrics_sample_s: float = 5.0
    """How often every shell's CPU, memory and disk are sampled (``SHELLS_METRICS_SAMPLE_S``); each
    shell keeps its newest 8640 samples."""
    webhook_first_retry_s: float = 5.0
    """Seconds before a failed webhook delivery's first retry; each next wait doubles, up to an hour
    (``SHELLS_WEBHOOK_FIRST_RETRY_S``)."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, how long open command streams may run on before they end with a final
    ``shutting_down`` event (``SHELLS_SHUTDOWN_GRACE_S``); new requests answer 503 meanwhile."""

    @property
    def instance_id(self) -> str:
        """Short stable name of this instance; every host object (cgroup, netns, uid claim) carries it."""
        return hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:8]

    @property
    def run_dir(self) -> Path:
        """Runtime-only state (mount points, sockets, crun state, netns files): gone on reboot, like
        the shells' processes. Kept out of ``data_dir`` because a shell's unprivileged host uid must
        be able to traverse it, and a home directory usually is not traversable."""
        return Path(os.environ.get("SHELLS_RUN_DIR", "/run/shells")) / self.instance_id

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'shells.db'}"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        s = cls()
        values: dict[str, object] = {}
        paths = {
            "data_dir": "SHELLS_DATA_DIR",
            "cache_dir": "SHELLS_CACHE_DIR",
            "btrfs_dir": "SHELLS_BTRFS_DIR",
            "host_ca_dir": "SHELLS_HOST_CA_DIR",
        }
        for name, var in paths.items():
            if env.get(var):
                values[name] = Path(env[var])
        for name, var in {
            "host": "SHELLS_HOST",
            "region": "SHELLS_REGION",
            "database_url": "SHELLS_DATABASE_URL",
            "ingress_host": "SHELLS_INGRESS_HOST",
            "ingress_domain": "SHELLS_INGRESS_DOMAIN",
        }.items():
            if env.get(var):
                values[name] = env[var]
        ints = {
            "port": "SHELLS_PORT",
            "warm_pool_size": "SHELLS_WARM_POOL_SIZE",
            "pool_image_gib": "SHELLS_POOL_IMAGE_GIB",
            "quota_max_shells": "SHELLS_QUOTA_MAX_SHELLS",
            "quota_max_memory_mib": "SHELLS_QUOTA_MAX_MEMORY_MIB",
            "quota_max_snapshots": "SHELLS_QUOTA_MAX_SNAPSHOTS",
            "rate_limit_burst": "SHELLS_RATE_LIMIT_BURST",
            "ingress_port": "SHELLS_INGRESS_PORT",
            "idle_timeout_s": "SHELLS_IDLE_TIMEOUT_S",
        }
        for name, var in ints.items():
            if env.get(var):
                try:
                    values[name] = int(env[var])
                except ValueError:
                    raise InvalidRequest(f"{var} must be a whole number, not {env[var]!r}.") from None
        for name, var in {
            "quota_max_vcpus": "SHELLS_QUOTA_MAX_VCPUS",
            "rate_limit_per_s": "SHELLS_RATE_LIMIT_PER_S",
            "budget_check_s": "SHELLS_BUDGET_CHECK_S",
            "shutdown_grace_s": "SHELLS_SHUTDOWN_GRACE_S",
            "webhook_first_retry_s": "SHELLS_WEBHOOK_FIRST_RETRY_S",
            "metrics_sample_s": "SHELLS_METRICS_SAMPLE_S",
        }.items():
            if env.get(var):
                try:
                    values[name] = float(env[var])
                except ValueError:
                    raise InvalidRequest(f"{var} must be a number, not {env[var]!r}.") from None
        for name in (
            "rate_vcpu_hour",
            "rate_gib_hour",
            "rate_container_factor",
            "rate_wasm_factor",
            "rate_snapshot_gib_month",
            "free_tier_usd",
        ):
            var = "SHELLS_" + name.upper()
            if env.get(var):
                try:
                    values[name] = Decimal(env[var])
                except InvalidOperation:
                    raise InvalidRequest(f"{var} must be a decimal number, not {env[var]!r}.") from None
        if env.get("SHELLS_NETWORK_CIDR"):
            try:
                values["network_cidr"] = ipaddress.IPv4Network(env["SHELLS_NETWORK_CIDR"])
            except ValueError:
                raise InvalidRequest(
                    f"SHELLS_NETWORK_CIDR must be an IPv4 network like 10.200.0.0/16, "
                    f"not {env['SHELLS_NETWORK_CIDR']!r}."
                ) from None
        if env.get("SHELLS_DNS_UPSTREAMS"):
            values["dns_upstreams"] = tuple(
                u.strip() for u in env["SHELLS_DNS_UPSTREAMS"].split(",") if u.strip()
            )
        if env.get("SHELLS_MCP_ALLOWED_HOSTS"):
            values["mcp_allowed_hosts"] = tuple(
                h.strip() for h in env["SHELLS_MCP_ALLOWED_HOSTS"].split(",") if h.strip()
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(s, **values)  # type: ignore[arg-type]
