"""Every request body of the REST API as one pydantic model: the wire contract.

One model serves three readers: FastAPI validates a body against it (``api.contract.BodyRoute``),
``/openapi.json`` documents it (types, enums, bounds, defaults, descriptions), and the MCP tools take
their input schemas from it where the shapes match (``mcp.schemas``). A model checks the shape of a
body: which fields, their types and bounds. The door-neutral parsers of ``control`` still turn the
checked body into a request (``CreateShellRequest.parse`` …) and apply the rules that need more than
one field or the server's state, so every door keeps one set of rules.

A body that does not fit its model is ``InvalidRequest`` (400) with a sentence naming the field and
what it must be (``invalid``); an enum field answers the same sentence as ``parse_enum``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr
from pydantic.fields import FieldInfo

from ..domain.access import GRANTABLE, KNOWN_SCOPES
from ..domain.capabilities import Capability
from ..domain.errors import InvalidRequest
from ..domain.execution import DEFAULT_EXEC_TIMEOUT_S, MAX_EXEC_TIMEOUT_S
from ..domain.isolation import DEFAULT_RUNTIME, Language, Runtime, parse_enum
from ..domain.limits import (
    MAX_API_INT,
    MAX_SECRET_HOSTS,
    MAX_SHELL_MOUNTS,
    MAX_SHELL_SECRETS,
    MAX_USD,
    MAX_VOLUME_GIB,
)
from ..domain.network import NetworkMode
from ..domain.shapes import DEFAULT_SHAPE, SHAPES
from ..domain.tenancy import PRINCIPAL_KINDS
from .requests import (
    MAX_FORKS,
    MAX_IDLE_TIMEOUT_S,
    MAX_LABELS,
    MAX_NAME,
    MAX_SHELL_TTL_S,
    MAX_TAG,
    ON_TIMEOUT,
    SIGNALS,
)
from .terminal import DEFAULT_TTL_S, MAX_TTL_S
from .tokens import MAX_TOKEN_LIFETIME_S, TOKEN_FORMATS

E = TypeVar("E", bound=StrEnum)
Number = Annotated[float, Strict()]
"""A JSON number (an integer is fine, a boolean or a numeric string is not)."""
StrMap = dict[StrictStr, StrictStr]


def choice(enum: type[E], field: str) -> Any:
    """An enum field whose wrong value answers ``parse_enum``'s sentence (the choices listed)."""
    return Annotated[enum, BeforeValidator(lambda v: parse_enum(enum, v, field) if isinstance(v, str) else v)]


class Body(BaseModel):
    """A request body: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The fields the caller sent, in their JSON form, for the door-neutral parsers."""
        return self.model_dump(mode="json", exclude_unset=True)


# -- shells ------------------------------------------------------------------------------------


class NetworkPolicyBody(Body):
    """A shell's network policy."""

    mode: choice(NetworkMode, "network.mode") = Field(  # type: ignore[valid-type]
        default=NetworkMode.SEALED,
        description="sealed: no network at all; localhost: loopback and the shell's private networks; "
        "internet: outbound to public addresses (only to 'allow' when given).",
    )
    allow: list[StrictStr] | None = Field(
        default=None,
        description="With mode internet only: the only destinations, as host, host:port, *.domain or "
        "an address block (CIDR).",
    )


class BucketCredentialsBody(Body):
    """An S3 access key pair; write-only: no answer, audit event or file in the shell holds it."""

    access_key_id: StrictStr = Field(min_length=1, description="The access key id.")
    secret_access_key: StrictStr = Field(min_length=1, description="The secret access key.")


class BucketMountBody(Body):
    """A user's bucket mounted at ``path`` in the shell (docs/storage.md)."""

    bucket: StrictStr = Field(description="The bucket's name.")
    endpoint: StrictStr = Field(description="The S3-compatible server: http(s)://host[:port].")
    prefix: StrictStr | None = Field(default=None, description="Only the keys under this prefix.")
    path: StrictStr = Field(description="Where it appears in the shell (absolute, e.g. /data).")
    read_only: StrictBool | None = Field(default=None, description="Refuse writes (default false).")
    credentials: BucketCredentialsBody | StrictStr = Field(
        description="The bucket's credentials, or the name of credentials stored with "
        "POST /v1/bucket-credentials."
    )


class VolumeAttachBody(Body):
    """A tenant volume attached at ``path`` in the shell."""

    name: StrictStr = Field(description="The volume's name.")
    path: StrictStr = Field(description="Where it appears in the shell (absolute, e.g. /data).")
    read_only: StrictBool | None = Field(default=None, description="Attach it read-only (default false).")


class CreateShellBody(Body):
    """``POST /v1/shells``: what to make. ``language`` is required unless ``snapshot`` is given."""

    language: choice(Language, "language") | None = Field(  # type: ignore[valid-type]
        None, description="The language preset: its interpreter or compiler is ready inside."
    )
    runtime: choice(Runtime, "runtime") = Field(  # type: ignore[valid-type]
        DEFAULT_RUNTIME,
        description="The isolation class: container (crun, namespaces, seccomp), microvm (its own "
        "kernel under QEMU) or wasm (WASI, no sockets).",
    )
    network: choice(NetworkMode, "network.mode") | NetworkPolicyBody | None = Field(  # type: ignore[valid-type]
        None, description="The network policy, or only its mode (default sealed)."
    )
    networks: list[StrictStr] | None = Field(
        default=None, description="Private networks to join (not with a sealed network)."
    )
    shape: StrictStr | None = Field(
        default=None,
        description=f"vCPUs and memory (default {DEFAULT_SHAPE}).",
        json_schema_extra={"enum": [*SHAPES]},
    )
    template: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="A template name:tag instead of the language's preset (python:1, devbox:1, …).",
    )
    snapshot: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Make the shell from this snapshot (snap_…) of an earlier shell.",
    )
    name: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME,
        description="A name: letters, digits, '-', '_' or '.' (default: the id).",
    )
    env: StrMap | None = Field(
        default=None, description="Environment variables of every command in the shell."
    )
    labels: StrMap | None = Field(
        default=None, max_length=MAX_LABELS, description="Labels to find the shell by (?label=key=value)."
    )
    idle_timeout_s: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_IDLE_TIMEOUT_S,
        description="Seconds without activity before a shell that can pause pauses itself "
        "(0: never; absent: the server's default).",
    )
    timeout_s: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_SHELL_TTL_S,
        description="A hard time-to-live: the shell ends this many seconds after its creation, "
        "whatever it does (absent: none).",
    )
    on_timeout: Literal[ON_TIMEOUT] = Field(  # type: ignore[valid-type]
        default="kill", description="What the time-to-live does: kill (delete) or pause."
    )
    auto_resume: StrictBool | None = Field(
        default=None,
        description="Resume the paused shell when a request reaches one of its exposed ports "
        "(absent: on where the class can pause).",
    )
    secrets: list[StrictStr] | None = Field(
        default=None,
        max_length=MAX_SHELL_SECRETS,
        description="Names of the tenant's secrets the shell may use: each environment variable of "
        "that name holds a placeholder the host swaps for the value in HTTPS requests to the "
        "secret's hosts. Needs network mode internet; the value never enters the shell.",
    )
    region: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The region to run in (GET /v1/info lists them; absent: the server's own region).",
    )
    sync: SyncBody | None = Field(
        default=None,
        description="Mirror /workspace to this bucket of yours, continuously and completely at stop, "
        "pause, snapshot and delete (container and wasm shells; docs/storage.md).",
    )
    mounts: list[BucketMountBody] | None = Field(
        default=None,
        max_length=MAX_SHELL_MOUNTS,
        description="Users' S3-compatible buckets served at paths in the shell from the host (container "
        "shells); the credentials never enter the shell.",
    )
    volumes: list[VolumeAttachBody] | None = Field(
        default=None,
        max_length=MAX_SHELL_MOUNTS,
        description="The tenant's volumes to attach (container shells): any number read-only, one "
        "shell at a time read-write.",
    )


class ActionParams(Body):
    """The parameters of an action; each action takes only its own."""

    count: StrictInt | None = Field(
        default=None, ge=1, le=MAX_FORKS, description="fork: how many copies (default 1)."
    )
    name: StrictStr | None = Field(default=None, description="snapshot: a name for it.")
    max_bytes: StrictInt | None = Field(
        default=None,
        ge=1,
        description="logs: the most bytes of the log's end to return (clamped to the server's cap).",
    )


class ActionBody(ActionParams):
    """``POST /v1/shells/{id}/actions``: the action named in the body, with its parameters."""

    capability: choice(Capability, "action") = Field(  # type: ignore[valid-type]
        description="The action to run."
    )


class CommandBody(Body):
    """What every command names: one of ``cmd`` or ``command``, its environment, directory, timeout."""

    cmd: list[StrictStr] | None = Field(
        default=None,
        description='A program and its arguments, run without a shell: ["python3", "-c", "print(1)"].',
    )
    command: StrictStr | None = Field(default=None, description="A command line run by /bin/sh -c.")
    env: StrMap | None = Field(default=None, description="Extra environment variables.")
    cwd: StrictStr | None = Field(default=None, description="Working directory (default: the template's).")
    timeout_s: Number = Field(
        default=DEFAULT_EXEC_TIMEOUT_S,
        gt=0,
        le=MAX_EXEC_TIMEOUT_S,
        description="Seconds before the command is killed.",
    )


class ExecBody(CommandBody):
    """``POST /v1/shells/{id}/exec``: one of ``cmd`` or ``command``."""

    stdin: StrictStr | None = Field(default=None, description="Text sent to standard input.")
    stdin_b64: StrictStr | None = Field(
        default=None, description="Bytes sent to standard input, base64 (instead of stdin)."
    )


class ProcessBody(CommandBody):
    """``POST /v1/shells/{id}/processes``: a command that outlives the request that starts it."""

    user: StrictStr | None = Field(default=None, description="Run as this Linux user of the shell.")
    tag: StrictStr | None = Field(
        default=None, min_length=1, max_length=MAX_TAG, description="A name to find it again by."
    )
    stdin: StrictBool = Field(
        default=False, description="true: keep standard input open for later writes (…/stdin)."
    )


class SignalBody(Body):
    """``POST /v1/shells/{id}/processes/{pid}/signal``."""

    signal: StrictStr = Field(
        default="TERM",
        description=f"The signal sent to the process's group: one of {', '.join(SIGNALS)} (SIG… too).",
    )


class TimeoutBody(Body):
    """``POST /v1/shells/{id}/timeout``: the shell's hard time-to-live from now."""

    timeout_s: StrictInt = Field(
        ge=0, le=MAX_SHELL_TTL_S, description="Seconds from now (0: end it at once, by its on_timeout)."
    )
    extend_only: StrictBool = Field(
        default=False, description="Keep a later expiry already set instead of shortening it."
    )


class RunBody(Body):
    """``POST /v1/shells/{id}/run``: a snippet run with its language's interpreter or compiler."""

    code: StrictStr = Field(min_length=1, description="The source to run: a script, or a whole program.")
    language: choice(Language, "language") | None = Field(  # type: ignore[valid-type]
        None, description="Its language (default: the shell's)."
    )
    timeout_s: Number = Field(
        default=DEFAULT_EXEC_TIMEOUT_S,
        gt=0,
        le=MAX_EXEC_TIMEOUT_S,
        description="Seconds before the run is killed.",
    )


class TermBody(Body):
    """``POST /v1/shells/{id}/term``: a credential for the terminal's WebSocket."""

    ttl_s: StrictInt = Field(
        default=DEFAULT_TTL_S,
        ge=1,
        le=MAX_TTL_S,
        description="Seconds the credential is valid for a first connection.",
    )


# -- networking --------------------------------------------------------------------------------


class NetworkBody(Body):
    """``POST /v1/networks``: a private network."""

    name: StrictStr = Field(
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="1-31 lowercase letters, digits or '-', starting with a letter (a DNS suffix inside).",
    )


class AttachBody(Body):
    """``POST /v1/networks/{name}/shells``: the shell that joins."""

    shell_id: StrictStr = Field(description="The shell's id (sh_…).")


class PortBody(Body):
    """``POST /v1/shells/{id}/ports``: a port to expose."""

    port: StrictInt = Field(ge=1, le=65535, description="The TCP port a server listens on inside the shell.")
    public: StrictBool = Field(default=False, description="Reachable without the access token.")


# -- templates ---------------------------------------------------------------------------------


class SaveTemplateBody(Body):
    """``POST /v1/templates``: save a running shell as a template."""

    from_shell: StrictStr = Field(min_length=1, description="The id of a running shell.")
    name: StrictStr = Field(description="The template's name:tag.")
    include_workspace: StrictBool = Field(
        default=False, description="Keep /workspace's files in the template."
    )


class BuildTemplateBody(Body):
    """``POST /v1/templates/build``: exactly one of ``spec`` or ``builtin``."""

    spec: StrictStr | None = Field(default=None, description="The TOML text of a template spec.")
    builtin: StrictStr | None = Field(
        default=None, description="The name of a built-in template, such as rust:1."
    )


# -- tenancy and metering ----------------------------------------------------------------------


class QuotasBody(Body):
    """Limits set for one tenant; the others come from the server's settings."""

    max_shells: StrictInt | None = Field(default=None, gt=0, le=MAX_API_INT, description="Shells at once.")
    max_vcpus: Number | None = Field(
        default=None, gt=0, le=MAX_API_INT, description="vCPUs of its shells in all."
    )
    max_memory_mib: StrictInt | None = Field(
        default=None, gt=0, le=MAX_API_INT, description="MiB of its shells."
    )
    max_snapshots: StrictInt | None = Field(default=None, gt=0, le=MAX_API_INT, description="Snapshots kept.")
    requests_per_s: Number | None = Field(
        default=None, gt=0, le=MAX_API_INT, description="Requests per second per token."
    )
    burst: StrictInt | None = Field(
        default=None, gt=0, le=MAX_API_INT, description="Requests in a burst per token."
    )


TENANT_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
PRINCIPAL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"


class TenantBody(Body):
    """``POST /v1/tenants``."""

    name: StrictStr = Field(pattern=TENANT_NAME, description="1-63 lowercase letters, digits or '-'.")
    quotas: QuotasBody | None = Field(default=None, description="Its own limits.")


class QuotasUpdateBody(Body):
    """``PATCH /v1/tenants/{name}``: the limits to set."""

    quotas: QuotasBody | None = Field(default=None, description="Limits to set.")


class GrantBody(Body):
    """``POST /v1/shells/{id}/grants``: a role on one shell for a principal of its tenant."""

    principal: StrictStr = Field(pattern=PRINCIPAL_NAME, description="The principal's name.")
    role: Literal[tuple(GRANTABLE)] = Field(  # type: ignore[valid-type]
        description="viewer: read and see; operator: also run commands and act."
    )


class TokenBody(Body):
    """``POST /v1/tokens``: an API token (its secret is in the answer, once)."""

    scopes: list[Literal[tuple(sorted(KNOWN_SCOPES))]] = Field(  # type: ignore[valid-type]
        description='What the token may do, e.g. ["shells.read", "shells.exec"].'
    )
    tenant: StrictStr | None = Field(
        default=None, pattern=TENANT_NAME, description="Its tenant (default: yours)."
    )
    principal: StrictStr | None = Field(
        default=None, pattern=PRINCIPAL_NAME, description="Who it acts as (default: you)."
    )
    expires_in_s: StrictInt | None = Field(
        default=None, ge=1, le=MAX_TOKEN_LIFETIME_S, description="Seconds until it expires (default: never)."
    )
    kind: Literal[PRINCIPAL_KINDS] = Field(  # type: ignore[valid-type]
        default="service", description="The kind of a principal it creates."
    )
    format: Literal[TOKEN_FORMATS] = Field(  # type: ignore[valid-type]
        default="shells",
        description="shells (shl_…) or e2b (e2b_ and hex, the form E2B's SDKs accept; docs/e2b.md).",
    )


Dollars = Annotated[float, Strict(), Field(ge=0, le=MAX_USD)] | Annotated[str, Strict()]
"""An amount of dollars: a number, or a decimal string such as "2.50"."""


class BillingBody(Body):
    """``PUT /v1/tenants/{name}/billing``: a tenant's terms (null clears one)."""

    budget_usd: Dollars | None = Field(
        default=None, description='The most it may spend per month, in dollars (25 or "2.50"); null: no cap.'
    )
    free_tier_usd: Dollars | None = Field(default=None, description="Dollars per month not charged.")


# -- the sentence of a body that does not fit --------------------------------------------------


def invalid(model: type[BaseModel], errors: Sequence[Mapping[str, Any]]) -> InvalidRequest:
    """The 400 for a body that failed ``model``: unknown fields listed with the known ones, else the
    field with the deepest problem named with what it must be."""
    unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
    if unknown:
        return _unknown(model, unknown)
    located = [(_locate(model, e.get("loc", ())), e) for e in errors]
    (path, info), error = max(located, key=lambda pair: len(pair[0][0])) if located else (("", None), {})
    what = (info.description or "") if info is not None else ""
    if error.get("type") == "missing":
        message = f"'{path}' is required. {what}"
    else:
        message = f"Invalid '{path or 'body'}': {error.get('msg', 'invalid')}. {what}"
    return InvalidRequest(message.strip(), {"field": path})


def _unknown(model: type[BaseModel], errors: Sequence[Mapping[str, Any]]) -> InvalidRequest:
    parent, _ = _locate(model, tuple(errors[0]["loc"])[:-1])
    names = sorted({str(e["loc"][-1]) for e in errors})
    known = ", ".join(sorted(_fields_at(model, parent)))
    where = f" in '{parent}':" if parent else ""
    details: dict[str, Any] = {"fields": names} | ({"field": parent} if parent else {})
    return InvalidRequest(f"Unknown field(s){where} {', '.join(names)}. Known fields: {known}.", details)


def _locate(model: type[BaseModel], loc: Sequence[Any]) -> tuple[str, FieldInfo | None]:
    """The dotted field path of an error location and the innermost field, skipping list indexes,
    map keys and pydantic's union branch tags."""
    names: list[str] = []
    info: FieldInfo | None = None
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            continue
        info = current.model_fields[part]
        names.append(part)
        current = _model_in(info.annotation)
    return ".".join(names), info


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], path: str) -> list[str]:
    current: type[BaseModel] | None = model
    for part in filter(None, path.split(".")):
        current = _model_in(current.model_fields[part].annotation) if current else None
    return list(current.model_fields) if current else []


# -- secrets -------------------------------------------------------------------------------------


class SecretCreateBody(Body):
    """``POST /v1/secrets``: a tenant secret the egress proxy puts into HTTPS requests to ``hosts``."""

    name: StrictStr = Field(description="The secret's name, also the environment variable shells see.")
    value: StrictStr = Field(description="The value; write-only: no answer ever carries it.")
    hosts: list[StrictStr] = Field(
        max_length=MAX_SECRET_HOSTS,
        description="Host names (api.github.com) or wildcards (*.example.org) the value may be sent to.",
    )
    header: StrictStr | None = Field(
        default=None, description="A header to set to the value on every request to the hosts."
    )


class SecretUpdateBody(Body):
    """``PUT /v1/secrets/{name}``: what changes (a new value is a rotation); left-out fields stay."""

    value: StrictStr | None = Field(default=None, description="A new value (a rotation).")
    hosts: list[StrictStr] | None = Field(
        default=None, max_length=MAX_SECRET_HOSTS, description="A new list of hosts."
    )
    header: StrictStr | None = Field(default=None, description="A new header (null clears it).")


# -- images ----------------------------------------------------------------------------------------


class RegistryCredentialsBody(Body):
    """A registry's basic credentials (used for this request only, never stored)."""

    username: StrictStr = Field(min_length=1, description="The registry user.")
    password: StrictStr = Field(min_length=1, description="Its password or access token.")


class ImportBody(Body):
    """``POST /v1/templates/import``: an OCI image pulled from a registry becomes a template."""

    image: StrictStr = Field(
        description="registry/repo:tag or registry/repo@sha256:… (Docker Hub if no registry)."
    )
    name: StrictStr = Field(description="The template's name:tag.")
    credentials: RegistryCredentialsBody | None = Field(
        default=None, description="Credentials for a private registry."
    )


class ExportBody(Body):
    """``POST /v1/templates/export``: a template pushed to a registry as an OCI image."""

    template: StrictStr = Field(min_length=1, description="The template's name:tag (a saved shell too).")
    image: StrictStr = Field(description="registry/repo:tag to push to.")
    credentials: RegistryCredentialsBody | None = Field(
        default=None, description="Credentials for the registry."
    )


# -- webhooks --------------------------------------------------------------------------------------


class WebhookBody(Body):
    """``POST /v1/webhooks``: where the tenant's shell events are POSTed, signed."""

    url: StrictStr = Field(
        description="The receiver (http or https); loopback, link-local and metadata are refused."
    )
    events: list[StrictStr] = Field(
        min_length=1, description='The events to send (created, running, paused, …) or ["*"] for all.'
    )
    secret: StrictStr | None = Field(
        default=None, description="The HMAC-SHA256 signing secret (absent: one is made and shown once)."
    )


# -- workspace sync (docs/storage.md) --------------------------------------------------------------


class SyncCredentialsBody(Body):
    """A key of the bucket's S3 server; the host uses it, the shell never sees it."""

    access_key_id: StrictStr = Field(min_length=1, max_length=256, description="The key's id.")
    secret_access_key: StrictStr = Field(
        min_length=1, max_length=256, description="The key's secret (sealed in the record, never shown)."
    )


class SyncBody(Body):
    """Where a shell's /workspace is mirrored: ``prefix/<path>`` in ``bucket`` at ``endpoint``."""

    bucket: StrictStr = Field(min_length=3, max_length=63, description="The bucket (it must exist).")
    endpoint: StrictStr = Field(
        min_length=1, max_length=512, description="The S3-compatible server: http(s)://host[:port]."
    )
    prefix: StrictStr = Field(default="", max_length=512, description="Keys start with this path.")
    region: StrictStr = Field(
        default="us-east-1", min_length=1, max_length=64, description="The region the key signs for."
    )
    credentials: SyncCredentialsBody | StrictStr = Field(
        description="A key that may list, write and delete there, or the name of credentials stored "
        "with POST /v1/bucket-credentials."
    )


# -- volumes ---------------------------------------------------------------------------------------


class VolumeCreateBody(Body):
    """``POST /v1/volumes``: a named, persistent filesystem of the tenant, attached at shells' create."""

    name: StrictStr = Field(description="1 to 63 lowercase letters, digits, '-' or '_'.")
    size_gib: StrictInt = Field(
        ge=1, le=MAX_VOLUME_GIB, description="Its size in GiB (enforced on the host)."
    )


# -- bucket credentials ----------------------------------------------------------------------------


class BucketCredentialsCreateBody(Body):
    """``POST /v1/bucket-credentials``: an S3 key pair stored once for the tenant (the secret sealed,
    never shown again), named by mounts and syncs as ``"credentials": "<name>"``."""

    name: StrictStr = Field(description="1 to 63 lowercase letters, digits, '-' or '_'.")
    access_key_id: StrictStr = Field(min_length=1, max_length=256, description="The access key id.")
    secret_access_key: StrictStr = Field(
        min_length=1, max_length=256, description="The secret access key (write-only)."
    )


CreateShellBody.model_rebuild()  # its sync field names SyncBody, defined after it
