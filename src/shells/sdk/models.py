"""What the SDK returns: frozen, typed records built from the server's JSON.

Fields the server adds later are ignored, and enumerations (states, runtimes, modes) stay plain
strings, so an older SDK keeps working against a newer server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from ..domain.execution import FileEntry

T = TypeVar("T")
Json = dict[str, Any]


_FIELDS: dict[type, tuple[frozenset[str], frozenset[str]]] = {}


def from_wire(cls: type[T], data: Json, **overrides: Any) -> T:
    """Build a record from the fields of ``data`` it declares; ISO strings in its ``datetime``
    fields become datetimes."""
    known = _FIELDS.get(cls)
    if known is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        known = _FIELDS[cls] = (
            frozenset(f.name for f in fields),
            frozenset(f.name for f in fields if "datetime" in str(f.type)),
        )
    names, times = known
    values = {k: v for k, v in data.items() if k in names}
    for key in times & values.keys():
        if isinstance(values[key], str):
            values[key] = datetime.fromisoformat(values[key])
    return cls(**(values | overrides))


def _masked(record: object, secret: str) -> str:
    """``repr`` of a record holding a credential, with the credential replaced by ``'***'``."""
    shown = ", ".join(
        f"{f.name}={'***' if f.name == secret else repr(getattr(record, f.name))}"
        for f in dataclasses.fields(record)  # type: ignore[arg-type]
    )
    return f"{type(record).__name__}({shown})"


@dataclass(frozen=True, kw_only=True)
class NetworkPolicy:
    """Where a shell may connect: ``mode`` is ``sealed``, ``localhost`` or ``internet``; ``allow``
    limits ``internet`` to ``host:port`` entries."""

    mode: str
    allow: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: Json) -> NetworkPolicy:
        return cls(mode=str(data.get("mode", "sealed")), allow=tuple(data.get("allow") or ()))


@dataclass(frozen=True, kw_only=True)
class ShellInfo:
    """A shell's record as the server last reported it."""

    id: str
    name: str
    state: str
    state_reason: str = ""
    language: str = ""
    runtime: str = ""
    network: NetworkPolicy = field(default_factory=lambda: NetworkPolicy(mode="sealed"))
    shape: str = ""
    template: str = ""
    snapshot: str | None = None
    region: str = ""
    node: str = ""
    """The machine that holds the shell (``local`` on a one-box server)."""
    tenant: str = ""
    owner: str = ""
    env_names: list[str] = field(default_factory=list)
    """The names of the environment variables the shell was created with (values are never shown)."""
    labels: dict[str, str] = field(default_factory=dict)
    idle_timeout_s: int | None = None
    """Seconds without use after which the shell pauses itself; None never."""
    expires_at: datetime | None = None
    """When the shell's hard time-to-live ends it (None: never); see ``on_timeout``."""
    on_timeout: str = "kill"
    auto_resume: bool = False
    """A request to one of its exposed ports resumes it when it is paused (wake on request)."""
    runtime_details: dict[str, str] = field(default_factory=dict)
    """How the shell's isolation class runs on this host (e.g. a microVM's acceleration)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    mounts: list[dict[str, Any]] = field(default_factory=list)
    """Its bucket mounts (bucket, endpoint, prefix, path, read_only; never the credentials)."""
    volumes: list[dict[str, Any]] = field(default_factory=list)
    """Its volumes (name, path, read_only)."""

    @classmethod
    def parse(cls, data: Json) -> ShellInfo:
        return from_wire(cls, data, network=NetworkPolicy.parse(data.get("network") or {}))


@dataclass(frozen=True, kw_only=True)
class RuntimeOffer:
    """One cell of the runtime matrix: a language preset in one isolation class on this server."""

    language: str
    runtime: str
    available: bool
    version: str = ""
    notes: str = ""
    """How it is provided, what is missing, or why it is unavailable."""


@dataclass(frozen=True, kw_only=True)
class UsageLine:
    """One row of a usage report: what the shells under ``key`` (a shell id, a class, a day or a
    principal) ran, and what it cost (exact to the micro-dollar)."""

    key: str
    seconds: float
    vcpu_seconds: float
    gib_seconds: float
    cost_usd: Decimal

    @classmethod
    def parse(cls, data: Json) -> UsageLine:
        return from_wire(cls, data, cost_usd=Decimal(str(data["cost_usd"])))


@dataclass(frozen=True, kw_only=True)
class BillingTerms:
    """A tenant's month so far: its cost, the free tier spent first, what is charged beyond it, and
    the budget cap (None: no cap) that, once reached, halts its shells."""

    cost_usd: Decimal
    free_tier_usd: Decimal
    charged_usd: Decimal
    budget_usd: Decimal | None
    cap_reached: bool

    @classmethod
    def parse(cls, data: Json) -> BillingTerms:
        budget = data.get("budget_usd")
        return cls(
            cost_usd=Decimal(data["cost_usd"]),
            free_tier_usd=Decimal(data["free_tier_usd"]),
            charged_usd=Decimal(data["charged_usd"]),
            budget_usd=None if budget is None else Decimal(budget),
            cap_reached=bool(data["cap_reached"]),
        )


@dataclass(frozen=True, kw_only=True)
class UsageReport:
    """Usage over ``[start, end)`` grouped by ``group_by``. ``owner`` is set when it covers only the
    caller's own shells; ``month`` is the tenant's bill so far this month (tenant admins)."""

    tenant: str
    start: datetime
    end: datetime
    group_by: str
    owner: str | None
    lines: list[UsageLine]
    total: UsageLine
    month: BillingTerms | None

    @classmethod
    def parse(cls, data: Json) -> UsageReport:
        month = data.get("month")
        return cls(
            tenant=str(data["tenant"]),
            start=datetime.fromisoformat(data["from"]),
            end=datetime.fromisoformat(data["to"]),
            group_by=str(data["group_by"]),
            owner=data.get("owner"),
            lines=[UsageLine.parse(line) for line in data["lines"]],
            total=UsageLine.parse(data["total"]),
            month=None if month is None else BillingTerms.parse(month),
        )


@dataclass(frozen=True, kw_only=True)
class Pricing:
    """The rates (``classes``: per vCPU and GiB, per hour and per second, as decimal strings), each
    shape's hourly price in every class, snapshot storage, and the runtime matrix they apply to."""

    currency: str
    classes: dict[str, dict[str, str]]
    shapes: list[dict[str, Any]]
    snapshot_gib_month_usd: str
    free_tier_usd: str
    runtimes: list[RuntimeOffer]

    @classmethod
    def parse(cls, data: Json) -> Pricing:
        offers = [from_wire(RuntimeOffer, row) for row in data.get("runtimes") or ()]
        return from_wire(cls, data, runtimes=offers)


@dataclass(frozen=True, kw_only=True)
class CommandStarted:
    """The command was spawned inside the shell (the first event of every stream)."""

    pid: int


@dataclass(frozen=True, kw_only=True)
class CommandOutput:
    """A piece of output, in the order the shell produced it."""

    stream: Literal["stdout", "stderr"]
    data: str


@dataclass(frozen=True, kw_only=True)
class CommandExit:
    """How a command ended. ``exit_code`` is 128+N when signal N killed it."""

    exit_code: int
    signal: int | None = None
    timed_out: bool = False
    truncated: bool = False
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ProcessInfo:
    """A process that outlives the call that started it (``shell.processes``)."""

    pid: int
    tag: str | None = None
    argv: list[str] = field(default_factory=list)
    env_names: list[str] = field(default_factory=list)
    cwd: str | None = None
    user: str | None = None
    stdin_open: bool = False


@dataclass(frozen=True, kw_only=True)
class CommandResult(CommandExit):
    """A finished command: its whole output and how it ended."""

    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0


CommandEvent = CommandStarted | CommandOutput | CommandExit


@dataclass(frozen=True, kw_only=True)
class CommandResponse:
    """What ``run_command`` returns, shaped like the CreateOS SDK's answer: ``response.result.stdout``."""

    result: CommandResult


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """A saved copy of a shell's filesystem; create a shell from it with ``create(snapshot=id)``."""

    id: str
    shell_id: str
    runtime: str = ""
    template: str = ""
    language: str = ""
    name: str = ""
    created_at: datetime | None = None
    durable: bool = False
    """Whether the object store holds all of it, so any machine of the instance can start from it."""
    durable_at: datetime | None = None
    size_bytes: int | None = None
    """What it takes in the object store (None until it is durable)."""


@dataclass(frozen=True, kw_only=True)
class SyncStatus:
    """Where a shell's /workspace is mirrored and how far (``shell.sync_status()``): ``state`` is
    ``synced``, ``pending`` or ``failing`` (then ``last_error`` says why; sync retries on its own)."""

    enabled: bool
    endpoint: str = ""
    bucket: str = ""
    prefix: str = ""
    access_key_id: str = ""
    state: str = ""
    synced_files: int = 0
    synced_bytes: int = 0
    pending_files: int = 0
    skipped_files: int = 0
    last_synced_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_error_code: str | None = None
    """The bucket error's code (``bucket_denied``, ``bucket_not_found``, ``bucket_unreachable``)."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """One line of the audit trail: who (``principal``) did what (``action``) to what (``target``),
    through which door (``rest``, ``cli``, ``sdk``, ``mcp``, ``console``), and how it ended
    (``outcome``: ``ok``, a state, or the error code)."""

    id: int
    at: datetime
    shell_id: str | None
    principal: str
    door: str
    kind: str
    action: str
    outcome: str
    target: str | None = None
    destructive: bool = False
    request_id: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Template:
    """A root filesystem shells are created from."""

    name: str
    kind: str = ""
    parent: str | None = None
    status: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    content_hash: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    created_at: datetime | None = None
    image: dict[str, Any] | None = None
    """For an imported image or a Dockerfile build: ``source``, ``digest``, ``user``, ``entrypoint``,
    ``cmd``, ``labels``."""
    durable: bool = False
    """Whether the object store holds it, so any machine of the instance starts shells from it
    (built-ins never are: every machine makes its own)."""
    durable_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Secret:
    """A secret of your tenant, without its value (no answer ever holds one)."""

    id: str
    name: str
    hosts: list[str] = field(default_factory=list)
    header: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class BucketCredential:
    """Bucket credentials your tenant stored, without the secret (no answer ever holds one)."""

    id: str
    name: str
    access_key_id: str
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Volume:
    """A volume of your tenant: a filesystem that outlives every shell."""

    id: str
    name: str
    size_gib: int
    created_at: datetime | None = None
    attached: list[dict[str, Any]] = field(default_factory=list)
    """``{"shell_id", "read_only"}`` of every shell that holds it."""
    used_bytes: int | None = None
    durable_at: datetime | None = None
    """When its files last reached the object store (after a writer let it go); None: never yet."""
    stored_bytes: int | None = None
    """The size of that copy in the object store (packed)."""


@dataclass(frozen=True, kw_only=True)
class BuildStep:
    """A template build started step ``index`` of ``total``."""

    index: int
    total: int
    name: str


@dataclass(frozen=True, kw_only=True)
class BuildOutput:
    """Output of the running build step."""

    data: str


@dataclass(frozen=True, kw_only=True)
class BuildDone:
    """The build finished; ``cached`` when an identical template already existed."""

    template: Template
    cached: bool = False


BuildEvent = BuildStep | BuildOutput | BuildDone


@dataclass(frozen=True, kw_only=True)
class NetworkMember:
    """A shell on a private network, and its address there."""

    id: str
    address: str = ""


@dataclass(frozen=True, kw_only=True)
class Network:
    """A private network: shells attached to it reach each other and nothing else through it."""

    id: str
    name: str
    cidr: str = ""
    shells: list[NetworkMember] = field(default_factory=list)
    created_at: datetime | None = None

    @classmethod
    def parse(cls, data: Json) -> Network:
        return from_wire(cls, data, shells=[from_wire(NetworkMember, m) for m in data.get("shells") or ()])


@dataclass(frozen=True, kw_only=True)
class BlockedConnection:
    """Connections the shell's network policy refused, grouped by destination."""

    destination: str
    port: int | None = None
    protocol: str = ""
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class NetworkStatus:
    """A shell's network: its policy, private networks, addresses and what was blocked."""

    policy: NetworkPolicy
    networks: list[str] = field(default_factory=list)
    """The private networks the shell is on, by name."""
    addresses: dict[str, Any] = field(default_factory=dict)
    """``ipv4``, ``gateway`` and ``networks`` (name → address) while the shell runs."""
    blocked: list[BlockedConnection] = field(default_factory=list)

    @classmethod
    def parse(cls, data: Json) -> NetworkStatus:
        return from_wire(
            cls,
            data,
            policy=NetworkPolicy.parse(data.get("policy") or {}),
            blocked=[from_wire(BlockedConnection, b) for b in data.get("blocked") or ()],
        )


@dataclass(frozen=True, kw_only=True)
class Port:
    """A port of the shell reachable from outside at ``url`` (with ``token`` unless it is public)."""

    port: int
    url: str
    token: str | None = None
    public: bool = False
    created_at: datetime | None = None

    def __repr__(self) -> str:
        return _masked(self, "token")


@dataclass(frozen=True, kw_only=True)
class TermCredential:
    """A short-lived credential for the shell's terminal (the token is masked in ``repr``): send
    ``{"type": "auth", "token": ...}`` as the first message of a WebSocket to ``url``."""

    token: str
    expires_at: datetime | None = None
    url: str = ""
    id: str = ""
    """Names the credential, to revoke it; it is not the credential."""

    def __repr__(self) -> str:
        return _masked(self, "token")


@dataclass(frozen=True, kw_only=True)
class TermCredentialInfo:
    """A terminal credential as listings show it: ``token`` is masked (``term_…a1b2``)."""

    id: str
    shell_id: str
    principal: str
    token: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    in_use: bool = False
    """A terminal session is attached with it right now."""


@dataclass(frozen=True, kw_only=True)
class Tenant:
    """A tenant: its limits (``quotas``: the server's defaults with its own ``overrides``) and, for
    :meth:`Tenants.get`, what it holds now (``usage``)."""

    name: str
    quotas: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)
    usage: dict[str, float] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PrincipalInfo:
    """A person or service account of a tenant."""

    name: str
    kind: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Token:
    """An API token as listings show it: its visible ``prefix``, never the token."""

    id: str
    tenant: str
    principal: str
    prefix: str
    scopes: tuple[str, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @classmethod
    def parse(cls, data: Json) -> Token:
        return from_wire(cls, data, scopes=tuple(data.get("scopes") or ()))


@dataclass(frozen=True, kw_only=True, repr=False)
class NewToken(Token):
    """A token just minted: ``token`` is the secret, shown only this once (masked in ``repr``)."""

    token: str

    @classmethod
    def parse(cls, data: Json) -> NewToken:
        return from_wire(cls, data, scopes=tuple(data.get("scopes") or ()))

    def __repr__(self) -> str:
        return _masked(self, "token")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """A principal's role (``viewer`` or ``operator``) on one shell."""

    shell_id: str
    principal: str
    role: str
    granted_by: str = ""
    created_at: datetime | None = None


__all__ = [
    "BlockedConnection",
    "BuildDone",
    "BuildEvent",
    "BuildOutput",
    "BuildStep",
    "CommandEvent",
    "CommandExit",
    "CommandOutput",
    "CommandResponse",
    "CommandResult",
    "CommandStarted",
    "Event",
    "FileEntry",
    "Grant",
    "Network",
    "NetworkMember",
    "NetworkPolicy",
    "NetworkStatus",
    "NewToken",
    "Port",
    "PrincipalInfo",
    "Secret",
    "ShellInfo",
    "Snapshot",
    "SyncStatus",
    "Template",
    "Tenant",
    "TermCredential",
    "TermCredentialInfo",
    "Token",
]


@dataclass(frozen=True, kw_only=True)
class Webhook:
    """A URL called back on the tenant's shells' lifecycle events (docs/webhooks.md); ``secret`` is
    set only in the answer of ``create``."""

    id: str
    url: str
    events: list[str] = field(default_factory=list)
    secret: str | None = None
    created_at: datetime | None = None
    created_by: str = ""

    def __repr__(self) -> str:
        return _masked(self, "secret")


@dataclass(frozen=True, kw_only=True)
class WebhookDelivery:
    """One delivery of the log: ``state`` is ``pending`` (tried again at ``next_at``), ``delivered``
    or ``failed`` (given up after a day)."""

    id: int
    webhook_id: str
    event: str
    state: str
    attempts: int = 0
    shell_id: str | None = None
    event_id: int | None = None
    created_at: datetime | None = None
    next_at: datetime | None = None
    last_status: int | None = None
    last_error: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricSample:
    """One sample of a shell's resources, read on the host: ``at`` in Unix seconds, ``cpu_percent``
    of one core since the previous sample (None while paused or for the first one), memory and disk
    in bytes (None where they do not apply)."""

    at: float
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    disk_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class NodeDrain:
    """What :meth:`Nodes.drain` did: the node is cordoned; ``moved`` lists each shell moved off it
    (``{"shell", "to"}``), ``left`` each shell still on it with the reason (``{"shell", "reason"}``:
    running shells, and any that could not move)."""

    node: str
    cordoned: bool = True
    moved: list[dict[str, str]] = field(default_factory=list)
    left: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """A node of the instance as :meth:`Nodes.list` shows it (one box: its one node). The free
    figures are None where the node publishes none (one box, a ``--node`` agent without a Lease)."""

    name: str
    region: str | None = None
    zone: str | None = None
    classes: list[str] = field(default_factory=list)
    accel: str | None = None
    """``kvm`` or ``tcg`` for its microvms; None without the class."""
    state: str = "ready"
    """``ready`` (placed on) or ``gone`` (its Lease expired or it stopped answering; its shells lost)."""
    cordoned: bool = False
    generation: int = 0
    """How many times the record registered the node (it grows when a gone node comes back)."""
    reason: str = ""
    """Why it is gone."""
    shells: int = 0
    """Shells the record keeps on it."""
    cpus: float | None = None
    cpu_free: float | None = None
    memory_free_mib: int | None = None
    disk_free_mib: int | None = None
