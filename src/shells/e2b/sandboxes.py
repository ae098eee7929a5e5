"""E2B's control plane (``spec/openapi.yml`` of e2b-dev/E2B): sandboxes created, read, listed,
connected to, paused and killed, answered in E2B's JSON shapes and status codes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..control.auth import find_snapshot
from ..control.request_scope import current_request, note_outcome
from ..control.requests import MAX_FORKS, CreateShellRequest, parse_network_policy, parse_ttl
from ..control.service import Control
from ..control.snapshots import shells_from
from ..domain.capabilities import Capability
from ..domain.errors import (
    AgentError,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    QuotaExceeded,
    RuntimeFailure,
    ShellsError,
    Timeout,
    Unavailable,
)
from ..domain.execution import ExecSpec, collect
from ..domain.isolation import Language, Runtime, parse_enum
from ..domain.limits import E2B_MAX_METADATA, E2B_MAX_PAGE, MAX_JSON_BODY_BYTES
from ..domain.network import NetworkMode
from ..domain.principal import Principal
from ..domain.samples import Sample
from ..domain.shapes import Shape, get_shape
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .access import DoorAccess
from .errors import api_error, api_status
from .ids import sandbox_id, shell_id

DOOR = "e2b"
ENVD_VERSION = "0.6.2+shells"
"""The envd version the SDK is told: the newest whose features the door implements (stdin, the
default user, close-stdin, octet-stream uploads, file metadata). The ``+local`` part keeps it valid
PEP 440."""
DEFAULT_TIMEOUT_S = 15
"""E2B's default time-to-live when a create gives none (its SDKs send 300)."""
BASE_TEMPLATE_ALIAS = "base"
BASE_TEMPLATE = "e2b-base:1"
"""What E2B's ``base`` resolves to: the built-in with E2B's user, sudo, bash, curl, git, python3 and
Node (``runtime/templates/builtin/e2b-base.toml``)."""
DEFAULT_USER = "user"
MAX_SNAPSHOT_NAME = 128
SNAPSHOT_PREFIX = "snap_"
CHILD_FAILURES = (QuotaExceeded, RuntimeFailure, AgentError, Timeout, Unavailable)
"""Failures of a fork's children (quota, the host starting them), answered per child; any other
refusal is of the sandbox itself and fails the call."""
RUNTIME_METADATA = "shells.runtime"
"""Metadata key choosing the isolation class of a new sandbox (``container`` unless given)."""
ENSURE_USER = (
    f"id -u {DEFAULT_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {DEFAULT_USER} && "
    f"if [ -d /etc/sudoers.d ]; then echo '{DEFAULT_USER} ALL=(ALL:ALL) NOPASSWD: ALL' "
    "> /etc/sudoers.d/e2b-user && chmod 0440 /etc/sudoers.d/e2b-user; fi"
)
"""Every E2B sandbox has the user ``user`` (home /home/user, passwordless sudo where sudo is
installed): ``base`` is built with it, any other template gets it at create."""

Handler = Callable[[Request, Principal], Awaitable[Response]]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _state(shell: ShellRecord) -> str:
    return "paused" if shell.state in (ShellState.PAUSED, ShellState.STOPPED) else "running"


def _template_id(shell: ShellRecord) -> str:
    if shell.source_snapshot:
        return shell.source_snapshot
    return BASE_TEMPLATE_ALIAS if shell.template == BASE_TEMPLATE else shell.template


def _str_map(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = body.get(name) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest(f"'{name}' must be an object of string keys to string values.", {"field": name})
    if len(value) > E2B_MAX_METADATA:
        raise InvalidRequest(f"'{name}' has more than {E2B_MAX_METADATA} entries.", {"field": name})
    return value


def _timeout(body: Mapping[str, Any], default: int | None = None) -> int:
    value = body.get("timeout", default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("'timeout' must be a whole number of seconds.", {"field": "timeout"})
    return parse_ttl(value, "timeout")


def _started_after(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            "'startedAfter' must be an RFC 3339 date-time.", {"field": "startedAfter"}
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _limit(request: Request) -> int:
    try:
        limit = int(request.query_params.get("limit", E2B_MAX_PAGE))
    except ValueError:
        raise InvalidRequest("'limit' must be a whole number.", {"field": "limit"}) from None
    if not 1 <= limit <= E2B_MAX_PAGE:
        raise InvalidRequest(f"'limit' must be from 1 to {E2B_MAX_PAGE}.", {"field": "limit"})
    return limit


async def _json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read to at most MAX_JSON_BODY_BYTES (413 past it)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise PayloadTooLarge(f"A request body may hold at most {MAX_JSON_BODY_BYTES} bytes.")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


DENY_ALL = frozenset({"0.0.0.0/0", "::/0"})


def network_body(network: object, internet: object) -> dict[str, Any]:
    """E2B's egress settings as a Shells network policy body. Shells is allow-list based: no rule
    is the internet (public destinations); ``denyOut`` of everything (or ``allow_internet_access``
    false) with ``allowOut`` is the internet limited to those; without ``allowOut``, the loopback
    and private networks only (mode ``localhost``). Denying some destinations only, proxies and
    per-domain rules cannot be expressed and are refused."""
    if not isinstance(internet, bool):
        raise InvalidRequest(
            "'allow_internet_access' must be true or false.", {"field": "allow_internet_access"}
        )
    network = network or {}
    if not isinstance(network, dict):
        raise InvalidRequest("'network' must be an object.", {"field": "network"})
    unsupported = sorted(
        k for k, v in network.items() if v and k in ("rules", "egressProxy", "maskRequestHost")
    )
    if unsupported:
        raise InvalidRequest(f"Shells does not serve network {', '.join(unsupported)}.", {"field": "network"})
    allow, deny = network.get("allowOut") or [], network.get("denyOut") or []
    if (
        not isinstance(allow, list)
        or not isinstance(deny, list)
        or not all(isinstance(x, str) for x in [*allow, *deny])
    ):
        raise InvalidRequest("'allowOut' and 'denyOut' must be lists of strings.", {"field": "network"})
    if set(deny) - DENY_ALL:
        raise InvalidRequest(
            "Shells allows destinations rather than denying some: use allowOut with denyOut ['0.0.0.0/0'].",
            {"field": "network.denyOut"},
        )
    if not internet or deny:
        return {"mode": "internet", "allow": list(allow)} if allow else {"mode": "localhost"}
    return {"mode": "internet"}


def parse_new_sandbox(body: Mapping[str, Any]) -> CreateShellRequest:
    """E2B's ``NewSandbox`` as a Shells create. Internet access follows E2B (allowed unless
    ``allow_internet_access`` is false, which leaves the shell its loopback: mode ``localhost``)."""
    template = body.get("templateID")
    if not isinstance(template, str) or not template:
        raise InvalidRequest(
            "'templateID' is required: a template name such as 'base'.", {"field": "templateID"}
        )
    timeout = _timeout(body, DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
    auto_pause = body.get("autoPause", False)
    if not isinstance(auto_pause, bool):
        raise InvalidRequest("'autoPause' must be true or false.", {"field": "autoPause"})
    metadata = _str_map(body, "metadata")
    env = _str_map(body, "envVars")
    policy = parse_network_policy(network_body(body.get("network"), body.get("allow_internet_access", True)))
    runtime = parse_enum(Runtime, metadata.get(RUNTIME_METADATA, Runtime.CONTAINER.value), RUNTIME_METADATA)
    snapshot = template if template.startswith(SNAPSHOT_PREFIX) else None
    return CreateShellRequest(
        language=Language.BASH,
        runtime=runtime,
        network=policy,
        template=None if snapshot else BASE_TEMPLATE if template == BASE_TEMPLATE_ALIAS else template,
        snapshot=snapshot,
        env=env,
        labels=metadata,
        timeout_s=timeout,
        on_timeout="pause" if auto_pause else "kill",
    )


def _unix(request: Request, name: str) -> float | None:
    """A Unix-seconds query parameter (E2B: an integer from 0), or None when absent."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise InvalidRequest(f"'{name}' must be Unix seconds (a whole number from 0).", {"field": name})
    return float(text)


def sandbox_metric(sample: Sample, shape: Shape) -> dict[str, Any]:
    """One Shells sample as E2B's ``SandboxMetric`` (every field required by the SDK)."""
    at = datetime.fromtimestamp(sample.at, UTC)
    cpu = 0.0 if sample.cpu_percent is None else min(100.0, sample.cpu_percent / shape.vcpus)
    return {
        "timestamp": _iso(at),
        "timestampUnix": int(sample.at),
        "cpuCount": max(1, round(shape.vcpus)),
        "cpuUsedPct": round(cpu, 2),
        "memUsed": sample.memory_bytes or 0,
        "memTotal": shape.memory_bytes,
        "memCache": 0,
        "diskUsed": sample.disk_bytes or 0,
        "diskTotal": shape.disk_mib * 1024 * 1024,
    }


class Sandboxes:
    def __init__(self, control: Control, access: DoorAccess) -> None:
        self.control = control
        self.access = access

    def routes(self) -> list[Route]:
        def route(path: str, handler: Handler, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    principal = self.access.api_key(request.headers.get("x-api-key"))
                    response = await handler(request, principal)
                except ShellsError as exc:
                    response = api_error(exc)
                info = current_request()
                if info is not None:  # the audit row of a call nothing else recorded (reads, refusals)
                    target = request.path_params.get("sandbox")
                    self.control.audit.finish(
                        info,
                        action=f"e2b.{handler.__name__}",
                        target=None if target is None else f"sh_{str(target)[:64]}",
                        read=method == "GET",
                        status=response.status_code,
                    )
                return response

            return Route(path, endpoint, methods=[method])

        return [
            route("/sandboxes", self.create, "POST"),
            route("/v2/sandboxes", self.create, "POST"),  # the JS SDK's (2.51) create and connect
            route("/v2/sandboxes", self.list, "GET"),
            route("/sandboxes/{sandbox}", self.get, "GET"),
            route("/sandboxes/{sandbox}", self.kill, "DELETE"),
            route("/sandboxes/{sandbox}/timeout", self.set_timeout, "POST"),
            route("/sandboxes/{sandbox}/connect", self.connect, "POST"),
            route("/v2/sandboxes/{sandbox}/connect", self.connect, "POST"),
            route("/sandboxes/{sandbox}/pause", self.pause, "POST"),
            route("/sandboxes/{sandbox}/snapshots", self.snapshot, "POST"),
            route("/snapshots", self.snapshots, "GET"),
            route("/templates/{template}", self.delete_template, "DELETE"),
            route("/sandboxes/{sandbox}/fork", self.fork, "POST"),
            route("/sandboxes/{sandbox}/network", self.update_network, "PUT"),
            route("/sandboxes/{sandbox}/metrics", self.metrics, "GET"),
        ]

    def _sandbox(self, shell: ShellRecord, principal: Principal) -> dict[str, Any]:
        sandbox = sandbox_id(shell.id)
        return {
            "templateID": _template_id(shell),
            "sandboxID": sandbox,
            "clientID": "shells",
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": self.access.mint(sandbox, principal),
            "trafficAccessToken": None,
            "domain": None,
        }

    def _listed(self, shell: ShellRecord) -> dict[str, Any]:
        shape = get_shape(shell.shape)
        return {
            "templateID": _template_id(shell),
            "sandboxID": sandbox_id(shell.id),
            "clientID": "shells",
            "startedAt": _iso(shell.created_at),
            "endAt": _iso(shell.expires_at or shell.created_at),
            "cpuCount": max(1, round(shape.vcpus)),
            "memoryMB": shape.memory_mib,
            "diskSizeMB": shape.disk_mib,
            "metadata": dict(shell.labels),
            "state": _state(shell),
            "envdVersion": ENVD_VERSION,
        }

    async def create(self, request: Request, principal: Principal) -> Response:
        req = parse_new_sandbox(await _json(request))
        if req.snapshot is not None:  # a snapshot starts in the class it was taken in
            req = replace(req, runtime=find_snapshot(self.control.ctx.store, principal, req.snapshot).runtime)
        shell = await self.control.shells.create(principal, req, DOOR)
        if shell.template == BASE_TEMPLATE:
            return JSONResponse(self._sandbox(shell, principal), 201)
        try:
            setup = ExecSpec(argv=("/bin/sh", "-c", ENSURE_USER), cwd="/", timeout_s=60)
            result = await collect(
                await self.control.inside.exec(principal, shell.id, setup, DOOR, "e2b-setup")
            )
            if result.exit.exit_code != 0:
                raise InvalidRequest(
                    f"Template '{shell.template}' cannot have the user '{DEFAULT_USER}' E2B code expects "
                    f"(useradd failed: {result.stderr.decode(errors='replace')[:200]}).",
                    {"field": "templateID"},
                )
        except ShellsError:
            await self.control.shells.delete(principal, shell.id, DOOR)  # nothing half-created
            raise
        return JSONResponse(self._sandbox(shell, principal), 201)

    async def get(self, request: Request, principal: Principal) -> Response:
        shell = self.control.shells.get(principal, shell_id(request.path_params["sandbox"]))
        sandbox = self._sandbox(shell, principal)
        return JSONResponse(
            {
                **self._listed(shell),
                "envdAccessToken": sandbox["envdAccessToken"],
                "domain": None,
                "allowInternetAccess": shell.network.mode is NetworkMode.INTERNET,
            }
        )

    async def list(self, request: Request, principal: Principal) -> Response:
        params = request.query_params
        states = {s for s in params.get("state", "running,paused").split(",") if s}
        if not states <= {"running", "paused"}:
            raise InvalidRequest("'state' must list running and/or paused.", {"field": "state"})
        wanted = dict(parse_qsl(params.get("metadata", ""), keep_blank_values=True))
        limit = _limit(request)
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be asc or desc.", {"field": "order"})
        after_time = _started_after(params.get("startedAfter"))
        template = params.get("template")
        shells = [
            s
            for s in self.control.shells.list(principal)
            if s.state in (ShellState.RUNNING, ShellState.PAUSED, ShellState.STOPPED)
            and _state(s) in states
            and all(s.labels.get(k) == v for k, v in wanted.items())
            and (after_time is None or s.created_at >= after_time)
            and (template is None or template in (_template_id(s), s.template))
        ]
        shells.sort(key=lambda s: (s.created_at, s.id), reverse=order == "desc")
        after = params.get("nextToken")
        if after:
            ids = [s.id for s in shells]
            start = ids.index(shell_id(after)) + 1 if shell_id(after) in ids else len(ids)
            shells = shells[start:]
        page, more = shells[:limit], len(shells) > limit
        headers = {"X-Next-Token": sandbox_id(page[-1].id)} if more else {}
        return JSONResponse([self._listed(s) for s in page], headers=headers)

    async def kill(self, request: Request, principal: Principal) -> Response:
        await self.control.shells.delete(principal, shell_id(request.path_params["sandbox"]), DOOR)
        return Response(status_code=204)

    async def set_timeout(self, request: Request, principal: Principal) -> Response:
        """The sandbox ends ``timeout`` seconds from now (0: at once), as its create asked."""
        timeout = _timeout(await _json(request))
        self.control.shells.set_timeout(principal, shell_id(request.path_params["sandbox"]), timeout, DOOR)
        return Response(status_code=204)

    async def connect(self, request: Request, principal: Principal) -> Response:
        """Resume (or start) the sandbox if it is paused (201), else 200; ``timeout`` only extends."""
        timeout = _timeout(await _json(request), 0)
        target = shell_id(request.path_params["sandbox"])
        shell = self.control.shells.get(principal, target)
        if timeout:
            shell = self.control.shells.set_timeout(principal, target, timeout, DOOR, extend_only=True)
        status = 200
        if shell.state is ShellState.PAUSED:
            shell, _ = await self.control.shells.act(principal, target, Capability.RESUME.value, DOOR)
            status = 201
        elif shell.state is ShellState.STOPPED:
            shell, _ = await self.control.shells.act(principal, target, Capability.START.value, DOOR)
            status = 201
        return JSONResponse(self._sandbox(shell, principal), status)

    async def snapshot(self, request: Request, principal: Principal) -> Response:
        """A Shells snapshot of the sandbox (files; with memory for a microvm); its id works as a
        ``templateID``."""
        name = (await _json(request)).get("name") or ""
        if not isinstance(name, str) or len(name) > MAX_SNAPSHOT_NAME:
            raise InvalidRequest(f"'name' must be a string of at most {MAX_SNAPSHOT_NAME} characters.")
        target = shell_id(request.path_params["sandbox"])
        params = {"name": name} if name else {}
        _, result = await self.control.shells.act(principal, target, Capability.SNAPSHOT.value, DOOR, params)
        snap = result["snapshot"]
        return JSONResponse({"snapshotID": snap["id"], "names": [name or snap["id"]]}, 201)

    async def snapshots(self, request: Request, principal: Principal) -> Response:
        sandbox = request.query_params.get("sandboxID")
        name = request.query_params.get("name")
        snaps = self.control.snapshots(principal, shell_id(sandbox) if sandbox else None)
        if name:
            snaps = [s for s in snaps if name in (s.id, s.name)]
        snaps.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        after = request.query_params.get("nextToken")
        if after:
            ids = [s.id for s in snaps]
            snaps = snaps[ids.index(after) + 1 :] if after in ids else []
        limit = _limit(request)
        page = snaps[:limit]
        headers = {"X-Next-Token": page[-1].id} if len(snaps) > limit else {}
        body = [{"snapshotID": s.id, "names": [s.name or s.id]} for s in page]
        return JSONResponse(body, headers=headers)

    async def delete_template(self, request: Request, principal: Principal) -> Response:
        """Delete a snapshot (the SDK's ``delete_snapshot``): 404 for an unknown one, 400 while
        sandboxes created from it exist, as E2B refuses a template sandboxes still use."""
        template = request.path_params["template"]
        if not template.startswith(SNAPSHOT_PREFIX):
            raise Conflict(
                "The E2B door deletes snapshots only; delete Shells templates through Shells' API "
                "(`shells template rm`, `DELETE /v1/templates/{name}`).",
                {"template": template[:80]},
            )
        snap = find_snapshot(self.control.ctx.store, principal, template)
        users = shells_from(self.control.ctx, snap)
        if users:
            raise InvalidRequest(
                f"Cannot delete snapshot '{snap.id}' because sandboxes created from it still exist "
                f"({', '.join(sandbox_id(u) for u in users[:5])}); kill them first.",
                {"template": snap.id},
            )
        await self.control.delete_snapshot(principal, snap.id, DOOR)
        return Response(status_code=204)

    async def fork(self, request: Request, principal: Principal) -> Response:
        """``count`` children of the sandbox from its current state (a microvm; a container class
        answers 409), one result each: a sandbox, or why that child did not start. Children the
        tenant's quotas have no room for are refused one by one (429, as E2B's concurrency limit);
        a host failure while the children start fails every child of the call (Shells starts them
        all or none). Refusals of the sandbox itself (unknown, paused, another class) fail the call."""
        body = await _json(request)
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_FORKS:
            raise InvalidRequest(f"'count' must be a whole number from 1 to {MAX_FORKS}.", {"field": "count"})
        timeout = _timeout(body, DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
        target = shell_id(request.path_params["sandbox"])
        parent = self.control.shells.get(principal, target)
        fits, over_quota = self.control.ctx.quotas.fitting(parent.tenant, get_shape(parent.shape), count)
        refused: ShellsError | None = over_quota
        results: list[dict[str, Any]] = []
        if fits:
            try:
                _, result = await self.control.shells.act(
                    principal, target, Capability.FORK.value, DOOR, {"count": fits}
                )
            except CHILD_FAILURES as exc:
                refused = exc
            else:
                for child in result["shells"]:
                    record = self.control.shells.set_timeout(principal, child["id"], timeout, DOOR)
                    results.append({"sandbox": self._sandbox(record, principal)})
        if refused is not None:
            note_outcome(refused.code)
            failure = {"code": api_status(refused), "message": refused.message}
            results += [{"error": failure} for _ in range(count - len(results))]
        return JSONResponse(results, 201)

    async def update_network(self, request: Request, principal: Principal) -> Response:
        """Replace the sandbox's egress rules (as at create), applied at once to a running one."""
        body = await _json(request)
        policy = network_body(body, body.get("allow_internet_access", True))
        await self.control.network.set_policy(
            principal, shell_id(request.path_params["sandbox"]), policy, DOOR
        )
        return Response(status_code=204)

    async def pause(self, request: Request, principal: Principal) -> Response:
        """Pause with memory where the class can and ``memory`` is not false, else stop keeping the
        filesystem (E2B's filesystem-only pause): either way ``connect`` brings it back. 409 if it
        is already paused."""
        memory = (await _json(request)).get("memory", True)
        if not isinstance(memory, bool):
            raise InvalidRequest("'memory' must be true or false.", {"field": "memory"})
        target = shell_id(request.path_params["sandbox"])
        shell = self.control.shells.get(principal, target)
        can_pause = Capability.PAUSE in self.control.ctx.backend(shell.runtime).capabilities
        capability = Capability.PAUSE if memory and can_pause else Capability.STOP
        await self.control.shells.act(principal, target, capability.value, DOOR)
        return Response(status_code=204)

    async def metrics(self, request: Request, principal: Principal) -> Response:
        """The sandbox's samples (``control.samples``: read on the host, never asked of the shell)
        from ``start`` to ``end`` (Unix seconds; the whole ring by default) in E2B's ``SandboxMetric``
        shape. ``cpuUsedPct`` is of all the sandbox's vCPUs, as E2B reports it; a paused microvm's
        samples (no process, so no CPU or memory) are left out."""
        start, end = _unix(request, "start"), _unix(request, "end")
        target = shell_id(request.path_params["sandbox"])
        shell = self.control.shells.get(principal, target)
        shape = get_shape(shell.shape)
        return JSONResponse(
            [
                sandbox_metric(sample, shape)
                for sample in self.control.samples.series(principal, target, start, end)
                if sample.memory_bytes is not None
            ]
        )
