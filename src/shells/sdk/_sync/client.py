# Generated from src/shells/sdk/_async/client.py by scripts/unasync.py; edit that file and run the script.
"""The client: one per server, holding its connections (``Shells()`` / ``Shells()``)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Unpack

import httpx

from ..connection import DEFAULT_TIMEOUT_S
from ..models import Event, Pricing, RuntimeOffer, ShellInfo, UsageReport, from_wire
from ..retry import RetryPolicy
from ..wire import CreateOptions, create_body, usage_params
from .http import HTTP
from .nodes import Nodes
from .resources import (
    BucketCredentials,
    Networks,
    Secrets,
    Snapshots,
    Templates,
    Volumes,
)
from .shell import Shell
from .tenancy import Principals, Tenants, Tokens
from .webhooks import Webhooks


class Shells:
    """A client for one Shells server.

    ``base_url`` and ``token`` default to ``SHELLS_BASE_URL`` and ``SHELLS_API_TOKEN``. ``timeout``
    bounds every call except commands, code runs and builds, which the server bounds. ``retry``
    says how often a call that may be sent again is retried (see ``RetryPolicy``); ``headers`` go
    with every request (``X-Shells-Door`` names the door the audit trail records: ``sdk`` unless
    given); ``transport`` replaces httpx's. Use it as a context manager, or call :meth:`close`.

    Raises:
        Unauthenticated: no token was given and ``SHELLS_API_TOKEN`` is not set.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = HTTP(
            base_url,
            token,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            transport=transport,
            headers=headers,
        )
        self.templates = Templates(self._http)
        self.networks = Networks(self._http)
        self.secrets = Secrets(self._http)
        self.volumes = Volumes(self._http)
        self.bucket_credentials = BucketCredentials(self._http)
        self.snapshots = Snapshots(self._http)
        self.tenants = Tenants(self._http)
        self.tokens = Tokens(self._http)
        self.principals = Principals(self._http)
        self.webhooks = Webhooks(self._http)
        self.nodes = Nodes(self._http)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __enter__(self) -> Shells:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def info(self) -> dict[str, Any]:
        """What the server runs: version, runtimes with their capabilities, languages, shapes."""
        return dict(self._http.call("GET", "/v1/info"))

    def runtimes(self) -> list[RuntimeOffer]:
        """The runtime matrix: every language preset in every isolation class, available or why not."""
        data = self._http.call("GET", "/v1/runtimes")
        return [from_wire(RuntimeOffer, row) for row in data.get("runtimes") or ()]

    def pricing(self) -> Pricing:
        """The rates of every isolation class and shape, with the runtime matrix they apply to."""
        return Pricing.parse(self._http.call("GET", "/v1/pricing"))

    def usage(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str = "shell",
        tenant: str | None = None,
    ) -> UsageReport:
        """What shells ran and cost from ``start`` (default: the first of this month, UTC) to
        ``end`` (default: now), by ``shell``, ``class``, ``day`` or ``principal``. Members see their
        own shells; tenant admins their whole tenant; platform admins may name a ``tenant``.

        Raises:
            InvalidRequest: an unknown ``group_by``, a time that is not ISO 8601, or ``end`` before ``start``.
            TenantNotFound: ``tenant`` is not one you may see.
        """
        params = usage_params(start, end, group_by, tenant)
        return UsageReport.parse(self._http.call("GET", "/v1/usage", params=params))

    def usage_csv(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str = "shell",
        tenant: str | None = None,
    ) -> str:
        """The same report as :meth:`usage`, as CSV text (a header, one row per line, the total last)."""
        params = usage_params(start, end, group_by, tenant) | {"format": "csv"}
        response = self._http.send("GET", "/v1/usage", params=params)
        return response.text

    def create(self, language: str | None = None, **options: Unpack[CreateOptions]) -> Shell:
        """Create a running shell and return its handle; ``with client.create(...)``
        deletes it when the block ends.

        ``language`` is ``bash`` (default), ``python``, ``node``, ``rust`` or ``go``; the options
        (``runtime``, ``network``, ``allow``, ``networks``, ``shape``, ``template``, ``snapshot``,
        ``name``, ``env``, ``labels``, ``idle_timeout_s``, ``auto_resume``, ``region``) are described
        in ``CreateOptions``.

        Raises:
            InvalidRequest: an unknown language, runtime, shape or option; the message says which.
            UnknownRegion: no node of this instance is in that region.
            TemplateNotFound / SnapshotNotFound: the named template or snapshot does not exist.
            FeatureUnavailable: this host cannot give the shell that runtime or network.
            NoCapacity: no node in the region offers the runtime or has room for the shape now.
            SnapshotNotPlaceable: only nodes that cannot take the shell hold the snapshot, and no
                other can fetch it (a cluster).
            SnapshotUnreachable: no node that answers holds the snapshot and it is not durable.
            QuotaExceeded: the account may not have more shells.
            Unavailable: the connection failed; a create is never sent twice.
        """
        answer = self._http.call("POST", "/v1/shells", body=create_body(language, options))
        return Shell(self._http, ShellInfo.parse(answer))

    def create_sandbox(self, *, rootfs: str | None = None, **options: Unpack[CreateOptions]) -> Shell:
        """CreateOS-style create: ``rootfs`` is the template (``"devbox:1"``); ``shape`` and the other
        options are those of :meth:`create`.

        Raises:
            The errors of :meth:`create`.
        """
        if rootfs is not None:
            options["template"] = rootfs
        return self.create(**options)

    def get(self, shell_id: str) -> Shell:
        """The shell with this id.

        Raises:
            ShellNotFound: there is no such shell, or it is not yours.
        """
        return Shell(self._http, ShellInfo.parse(self._http.call("GET", f"/v1/shells/{shell_id}")))

    def list(
        self, *, state: str | None = None, runtime: str | None = None, label: str | None = None
    ) -> builtins.list[Shell]:
        """Your shells, optionally only those in ``state``, of ``runtime``, or with ``label``
        (``"key"`` or ``"key=value"``).

        Raises:
            InvalidRequest: an unknown state or runtime.
        """
        params = {k: v for k, v in (("state", state), ("runtime", runtime), ("label", label)) if v}
        answer = self._http.call("GET", "/v1/shells", params=params)
        return [Shell(self._http, ShellInfo.parse(s)) for s in answer["shells"]]

    def audit(
        self,
        *,
        shell: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        door: str | None = None,
        outcome: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> builtins.list[Event]:
        """Your tenant's audit trail (tenant admins), oldest first: every request that read or
        changed anything, filtered by what is given (all filters combine). ``after`` is the id of
        the last event already seen; ``limit`` caps the answer (500 by default, 5000 at most).

        Raises:
            PermissionDenied: the token lacks ``tenant.admin``.
            InvalidRequest: a time that is not ISO 8601.
        """
        filters: dict[str, str | int | None] = {
            "shell": shell,
            "actor": actor,
            "action": action,
            "door": door,
            "outcome": outcome,
            "since": since.isoformat() if isinstance(since, datetime) else since,
            "until": until.isoformat() if isinstance(until, datetime) else until,
            "after": after or None,
            "limit": limit,
        }
        params = {k: v for k, v in filters.items() if v is not None}
        answer = self._http.call("GET", "/v1/audit", params=params)
        return [from_wire(Event, e) for e in answer["events"]]
