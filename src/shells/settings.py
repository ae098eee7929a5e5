"""One settings object for the whole server, read from ``SHELLS_*`` environment variables."""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

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
    """The region of this machine's node when Kubernetes names none (its Node's
    ``topology.kubernetes.io/region`` label wins), and of a create that names no region."""
    zone: str = ""
    """The zone of this machine's node when its Kubernetes Node's label names none."""
    database_url: str | None = None
    warm_pool_size: int = 2
    warm_pool_memory_mib: int = 0
    """Most memory the warm pool's shells may hold together when demand grows it (at
    ``IDLE_SHELL_BYTES`` a shell; never more than half the host's available memory); 0: 10 % of the
    host's available memory (``SHELLS_WARM_POOL_MEMORY_MIB``)."""
    microvm_warm_pool_size: int = 0
    """Restored microvm shells of the default template kept ready (``SHELLS_MICROVM_WARM_POOL_SIZE``):
    the floor of the microvm class's warm pool, off by default (each holds a VM's memory)."""
    pool_image_gib: int = 64
    btrfs_dir: Path | None = None
    host_ca_dir: Path = Path("/usr/local/share/ca-certificates")
    """The CA certificates (``*.crt``) this host trusts locally, which templates trust too when they
    are imported into this instance (``SHELLS_HOST_CA_DIR``)."""
    registry_ca_file: Path | None = None
    """A PEM file of CAs trusted for image registries besides the system's and ``host_ca_dir``'s
    (``SHELLS_REGISTRY_CA_FILE``): a private registry's own CA."""
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
    ingress_port: int | None = None
    """Where the ingress proxy listens (``SHELLS_INGRESS_PORT``). None: the API port + 1 when it is
    free, else any free port, so a second instance started with only ``--port`` runs beside the first
    (``server.choose_ingress_port``); a port set explicitly is used or the start is refused."""
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
    overlay_port: int = 4789
    """The UDP port of a node's overlay links to other nodes (``SHELLS_OVERLAY_PORT``; the same on
    every node of a cluster). Choose another when the host's own network (a Kubernetes CNI's VXLAN)
    already uses 4789: the node takes this port only from its peer nodes."""
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
    sync_interval_s: float = 2.0
    """How often a running shell's /workspace is compared with what its bucket holds; each pass sends
    only files whose size or modification time changed (``SHELLS_SYNC_INTERVAL_S``)."""
    sync_first_retry_s: float = 1.0
    """Seconds before the pass after a failed one; each next wait doubles, up to a minute
    (``SHELLS_SYNC_FIRST_RETRY_S``)."""
    webhook_first_retry_s: float = 5.0
    """Seconds before a failed webhook delivery's first retry; each next wait doubles, up to an hour
    (``SHELLS_WEBHOOK_FIRST_RETRY_S``)."""
    shutdown_grace_s: float = 10.0
    """On SIGTERM, how long open command streams may run on before they end with a final
    ``shutting_down`` event (``SHELLS_SHUTDOWN_GRACE_S``); new requests answer 503 meanwhile."""

    kube_url: str | None = None
    """The Kubernetes API server (``SHELLS_KUBE_URL``) for the Leases of a cluster; None: one box, no
    Kubernetes (inside a pod too: deploy/ names the API and the pod's service-account files)."""
    kube_token_file: Path | None = None
    """A file holding the bearer token for ``kube_url`` (read at every call, so it may be rotated)."""
    kube_ca_file: Path | None = None
    """The CA of ``kube_url``'s certificate; None trusts the system's CAs."""
    kube_namespace: str = "default"
    lease_duration_s: float = 15.0
    """How long a control replica's or a node's Lease lasts without renewal: the longest the
    singleton duties pause when their holder dies, and how long a dead node counts as alive."""

    e2b_port: int = 0
    """The port of the E2B door (``shells serve --e2b-port``; docs/e2b.md): E2B's control plane and
    in-sandbox protocol on one listener of ``host``. 0 (the default) serves no door."""
    e2b_domain: str = ""
    """Domain mode of the E2B door (``shells serve --e2b-domain``; docs/e2b.md): the door's listener
    speaks TLS and answers ``api.{domain}`` (control plane) and ``{port}-{sandbox id}.{domain}``
    (a sandbox), for E2B code that sets ``E2B_DOMAIN``. Empty: header mode only, plain HTTP."""
    e2b_tls_cert_file: Path | None = None
    e2b_tls_key_file: Path | None = None
    """The door's certificate (PEM, its chain after it) for ``*.{e2b_domain}`` and its key, required
    in domain mode."""
    secrets_key_file: Path | None = None
    """The key that seals tenant secrets: 32 random bytes, made with mode 0600 at first start.
    None: ``data_dir/secrets.key``. Keep it out of database backups."""
    mount_endpoints_local: bool = False
    """Let bucket mounts reach endpoints on this host itself (loopback, its own addresses): for a
    single box whose object store runs beside Shells, and for tests. Off, such endpoints are refused
    (``SHELLS_MOUNT_ENDPOINTS_LOCAL``); link-local and cloud metadata addresses are refused always."""
    egress_ca_file: Path | None = None
    """Extra CA certificates (PEM) the egress proxy trusts for the real hosts it forwards secrets
    to, beside the system's, e.g. for a private API."""
    node_name: str = "local"
    """This machine's name in the record (``SHELLS_NODE_NAME``): every shell names the node that
    holds it. One box keeps ``local``; each node agent of a cluster needs its own."""
    cluster_secret_file: Path | None = None
    """The per-cluster shared secret (a file of at least 32 bytes) with which a node agent and the
    control plane authenticate every RPC both ways (``SHELLS_CLUSTER_SECRET_FILE``; docs/cluster.md)."""
    node_tls_cert_file: Path | None = None
    node_tls_key_file: Path | None = None
    node_tls_ca_file: Path | None = None
    """TLS on the node RPC (optional; all three or none; ``node/tls.py``, docs/cluster.md): this
    process's certificate and key and the cluster's CA, PEM. A node agent with them speaks only TLS
    and requires a client certificate of that CA; a control plane presents its own and trusts nodes
    only by that CA, on top of the cluster secret."""
    nodes: tuple[str, ...] = ()
    """The node agents a control-plane role drives (``SHELLS_NODES``, comma-separated URLs); empty:
    this process is its own node (one box)."""
    discover_nodes: bool = False
    """The control role also drives the node agents it finds by their Kubernetes Leases
    (``kube_url``), connecting and dropping them as they come and go (``shells serve --role
    control`` with ``SHELLS_KUBE_URL`` sets it)."""
    classes: tuple[str, ...] = ()
    """The isolation classes this machine runs (``SHELLS_CLASSES``, comma-separated, e.g.
    ``container,wasm``); empty: every class the host can run. The container class always runs:
    wasm and microvm build on its pool and templates."""

    sync_private_endpoints: tuple[str, ...] = ()
    """``host:port`` of S3 servers on private addresses (loopback, this host's) that workspace sync
    may reach (``SHELLS_SYNC_PRIVATE_ENDPOINTS``, comma-separated), e.g. an in-house MinIO; any other
    sync endpoint that is or resolves to loopback, link-local, cloud metadata, this host or the
    shells' range is refused (docs/storage.md)."""
    object_store: str | None = field(default=None, repr=False)
    """The durable layer (``SHELLS_OBJECT_STORE``, docs/storage.md): where snapshots are kept so any
    machine sharing the record can start from them. ``http(s)://KEY_ID:SECRET@host[:port]/bucket[/prefix]``
    of any S3-compatible server (key and secret percent-encoded); None: ``data_dir/objects``."""

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
        """The defaults, then every ``SHELLS_<FIELD>`` variable that is set (parsed by the field's
        type, see ``env_var``), then ``overrides`` that are not None."""
        hints = get_type_hints(cls)
        values: dict[str, object] = {}
        for f in fields(cls):
            var = env_var(f.name)
            text = os.environ.get(var)
            if text:
                values[f.name] = _parse(var, text, hints[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)  # type: ignore[arg-type]


def env_var(name: str) -> str:
    """The environment variable of setting ``name``: one rule, so a setting is declared only once."""
    return "SHELLS_" + name.upper()


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


_PARSERS: dict[object, tuple[Callable[[str], object], str]] = {
    bool: (_flag, "1/true/yes/on or 0/false/no/off"),
    str: (str, "text"),
    Path: (Path, "a path"),
    int: (int, "a whole number"),
    float: (float, "a number"),
    Decimal: (Decimal, "a decimal number"),
    ipaddress.IPv4Network: (ipaddress.IPv4Network, "an IPv4 network like 10.200.0.0/16"),
}
"""How a setting's text becomes its type, and what to call a valid value in the refusal."""


def _parse(var: str, text: str, kind: object) -> object:
    """``text`` of variable ``var`` as a value of type ``kind`` (``X | None`` as X; a tuple of
    strings is comma-separated), or InvalidRequest naming the variable."""
    options = [a for a in get_args(kind) if a is not type(None)]
    if options and get_origin(kind) is not tuple:
        kind = options[0]
    if get_origin(kind) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    parse, what = _PARSERS[kind]
    try:
        return parse(text)
    except (ValueError, InvalidOperation):
        raise InvalidRequest(f"{var} must be {what}, not {text!r}.") from None
