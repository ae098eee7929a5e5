"""The client: one per server, holding its connections (``AsyncShells()`` / ``Shells()``)."""

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
from .http import AsyncHTTP
from .nodes import AsyncNodes
from .resources import (
    AsyncBucketCredentials,
    AsyncNetworks,
    AsyncSecrets,
    AsyncSnapshots,
    AsyncTemplates,
    AsyncVolumes,
)
from .shell import AsyncShell
from .tenancy import AsyncPrincipals, AsyncTenants, AsyncTokens
from .webhooks import AsyncWebhooks


class AsyncShells:
    """A client for one Shells server.

    ``base_url`` and ``token`` default to ``SHELLS_BASE_URL`` and ``SHELLS_API_TOKEN``. ``timeout``
    bounds every call except commands, code runs and builds, which the server bounds. ``retry``
    says how often a call that may be sent again is retried (see ``RetryPolicy``); ``headers`` go
    with every request (``X-Shells-Door`` names the door the audit trail records: ``sdk`` unless
    given); ``transport`` replaces httpx's. Use it as a context manager, or call :meth:`aclose`.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = AsyncHTTP(
            base_url,
            token,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            transport=transport,
            headers=headers,
        )
        self.templates = AsyncTemplates(self._http)
        self.networks = AsyncNetworks(self._http)
        self.secrets = AsyncSecrets(self._http)
        self.volumes = AsyncVolumes(self._http)
        self.bucket_credentials = AsyncBucketCredentials(self._http)
        self.snapshots = AsyncSnapshots(self._http)
        self.tenants = AsyncTenants(self._http)
        self.tokens = AsyncTokens(self._http)
        self.principals = AsyncPrincipals(self._http)
        self.webhooks = AsyncWebhooks(self._http)
        self.nodes = AsyncNodes(self._http)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def __aenter__(self) -> AsyncShells:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def info(self) -> dict[str, Any]:
        """What the server runs: version, runtimes with their capabilities, languages, shapes."""
        return dict(await self._http.call("GET", "/v1/info"))

    async def runtimes(self) -> list[RuntimeOffer]:
        """The runtime matrix: every language preset in every isolation class, available or why not."""
        data = await self._http.call("GET", "/v1/runtimes")
        return [from_wire(RuntimeOffer, row) for row in data.get("runtimes") or ()]

    async def pricing(self) -> Pricing:
        """The rates of every isolation class and shape, with the runtime matrix they apply to."""
        return Pricing.parse(await self._http.call("GET", "/v1/pricing"))

    async def usage(
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
        return UsageReport.parse(await self._http.call("GET", "/v1/usage", params=params))

    async def usage_csv(
        self,
        *,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        group_by: str = "shell",
        tenant: str | None = None,
    ) -> str:
        """The same report as :meth:`usage`, as CSV text (a header, one row per line, the total last)."""
        params = usage_params(start, end, group_by, tenant) | {"format": "csv"}
        response = await self._http.send("GET", "/v1/usage", params=params)
        return response.text

    async def create(self, language: str | None = None, **options: Unpack[CreateOptions]) -> AsyncShell:
        """Create a running shell and return its handle; ``async with await client.create(...)``
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
        answer = await self._http.call("POST", "/v1/shells", body=create_body(language, options))
        return AsyncShell(self._http, ShellInfo.parse(answer))

    async def create_sandbox(
        self, *, rootfs: str | None = None, **options: Unpack[CreateOptions]
    ) -> AsyncShell:
        """CreateOS-style create: ``rootfs`` is the template (``"devbox:1"``); ``shape`` and the other
        options are those of :meth:`create`.

        Raises:
            The errors of :meth:`create`.
        """
        if rootfs is not None:
            options["template"] = rootfs
        return await self.create(**options)

    async def get(self, shell_id: str) -> AsyncShell:
        """The shell with this id.

        Raises:
            ShellNotFound: there is no such shell, or it is not yours.
        """
        return AsyncShell(self._http, ShellInfo.parse(await self._http.call("GET", f"/v1/shells/{shell_id}")))

    async def list(
        self, *, state: str | None = None, runtime: str | None = None, label: str | None = None
    ) -> builtins.list[AsyncShell]:
        """Your shells, optionally only those in ``state``, of ``runtime``, or with ``label``
        (``"key"`` or ``"key=value"``).

        Raises:
            InvalidRequest: an unknown state or runtime.
        """
        params = {k: v for k, v in (("state", state), ("runtime", runtime), ("label", label)) if v}
        answer = await self._http.call("GET", "/v1/shells", params=params)
        return [AsyncShell(self._http, ShellInfo.parse(s)) for s in answer["shells"]]

    async def audit(
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
        answer = await self._http.call("GET", "/v1/audit", params=params)
        return [from_wire(Event, e) for e in answer["events"]]
