"""REST v1. Routes only translate HTTP to control calls; every rule lives in the control layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.bodies import ActionBody, ActionParams, CreateShellBody, ExecBody
from ..control.requests import CreateShellRequest, parse_exec
from ..domain.capabilities import Capability
from ..domain.errors import InvalidRequest
from ..domain.execution import FileEntry
from .contract import ANYONE, AUTHED, BODY, INSIDE, BodyRoute, errors
from .deps import DOOR, ControlDep, Cursor, DrainDep, PageSize, PrincipalDep
from .exec_stream import exec_response
from .stream_docs import EXEC_RESPONSES

router = APIRouter(route_class=BodyRoute)
READ = errors(*AUTHED, 404)
"""A read of one shell: a bad header, the token, the rate limit, the drain, an unknown shell."""
FILES = errors(*AUTHED, *INSIDE)
OCTET = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
FILE_CHUNK = 256 * 1024


def _entry(e: FileEntry) -> dict[str, Any]:
    return {
        "path": e.path,
        "name": e.name,
        "kind": e.kind,
        "size": e.size,
        "mode": e.mode,
        "mtime": e.mtime,
        "link_target": e.link_target,
    }


@router.get("/v1/info", responses=errors(*ANYONE))
async def info(control: ControlDep) -> dict[str, Any]:
    return control.info()


@router.get("/v1/runtimes", responses=errors(*AUTHED))
async def runtimes(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    """The runtime matrix: every language in every isolation class → available, version, notes."""
    return {"runtimes": control.runtimes()}


@router.post("/v1/shells", status_code=201, responses=errors(*AUTHED, *BODY, *INSIDE))
async def create_shell(control: ControlDep, principal: PrincipalDep, body: CreateShellBody) -> dict[str, Any]:
    shell = await control.shells.create(principal, CreateShellRequest.parse(body.wire()), DOOR)
    return control.ctx.public(shell)


@router.get("/v1/shells", responses=errors(*AUTHED))
async def list_shells(
    control: ControlDep,
    principal: PrincipalDep,
    state: str | None = None,
    runtime: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    shells = control.shells.list(principal, state=state, runtime=runtime, label=label)
    return {"shells": [control.ctx.public(s) for s in shells]}


@router.get("/v1/shells/{shell_id}", responses=READ)
async def get_shell(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return control.ctx.public(control.shells.get(principal, shell_id))


@router.delete("/v1/shells/{shell_id}", status_code=204, responses=errors(*AUTHED, *INSIDE))
async def delete_shell(control: ControlDep, principal: PrincipalDep, shell_id: str) -> Response:
    await control.shells.delete(principal, shell_id, DOOR)
    return Response(status_code=204)


ACTION = Annotated[str, Path(description="The action.", json_schema_extra={"enum": [*Capability]})]
NO_PARAMS = ActionParams()
ACTS = errors(*AUTHED, *BODY, *INSIDE)


@router.post("/v1/shells/{shell_id}/actions/{action}", responses=ACTS)
async def act(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    action: ACTION,
    body: ActionParams = NO_PARAMS,
) -> dict[str, Any]:
    """Run one action; the body holds its parameters (``{"count": 2}`` for fork)."""
    shell, result = await control.shells.act(principal, shell_id, action, DOOR, body.wire())
    return {"shell": control.ctx.public(shell), "result": result}


@router.post("/v1/shells/{shell_id}/actions", responses=ACTS)
async def act_by_body(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: ActionBody
) -> dict[str, Any]:
    """The same, with the action named in the body: ``{"capability": "restart", ...}``."""
    params = ActionParams.model_validate(body.model_dump(exclude={"capability"}, exclude_unset=True))
    return await act(control, principal, shell_id, body.capability.value, params)


@router.get("/v1/shells/{shell_id}/events", responses=READ)
async def events(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    after: Cursor = 0,
    limit: PageSize = 500,
) -> dict[str, Any]:
    return {"events": [e.to_public() for e in control.events(principal, shell_id, after, limit)]}


@router.get("/v1/snapshots", responses=errors(*AUTHED, 404))
async def snapshots(
    control: ControlDep, principal: PrincipalDep, shell_id: str | None = None
) -> dict[str, Any]:
    return {"snapshots": [s.to_public() for s in control.snapshots(principal, shell_id)]}


@router.post("/v1/shells/{shell_id}/exec", response_model=None, responses=EXEC_RESPONSES)
async def exec_(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    body: ExecBody,
    drain: DrainDep,
    wait: bool = False,
) -> JSONResponse | StreamingResponse:
    """Run a command: an NDJSON stream of its events, or with ``?wait=true`` one JSON result."""
    events = await control.inside.exec(principal, shell_id, parse_exec(body.wire()), DOOR)
    return await exec_response(events, wait, drain)


@router.get("/v1/shells/{shell_id}/files", response_class=StreamingResponse, responses={200: OCTET, **FILES})
async def read_file(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str
) -> StreamingResponse:
    chunks = await control.inside.read_file(principal, shell_id, path)
    first = await anext(chunks, b"")
    return StreamingResponse(_prepend(first, chunks), media_type="application/octet-stream")


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


@router.put(
    "/v1/shells/{shell_id}/files",
    responses=errors(*AUTHED, *BODY, *INSIDE),
    openapi_extra={"requestBody": {"required": True, **OCTET}},
)
async def write_file(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    path: str,
    request: Request,
    mode: str = "644",
) -> dict[str, Any]:
    try:
        file_mode = int(mode, 8)
    except ValueError:
        file_mode = -1
    if not 0 <= file_mode <= 0o7777:
        raise InvalidRequest("'mode' must be octal permission bits such as 644.")
    size = await control.inside.write_file(principal, shell_id, path, request.stream(), file_mode, DOOR)
    return {"path": path, "size": size}


@router.delete("/v1/shells/{shell_id}/files", status_code=204, responses=FILES)
async def remove_file(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str, recursive: bool = False
) -> Response:
    await control.inside.remove(principal, shell_id, path, recursive, DOOR)
    return Response(status_code=204)


@router.get("/v1/shells/{shell_id}/files/list", responses=FILES)
async def list_files(
    control: ControlDep, principal: PrincipalDep, shell_id: str, path: str = "/workspace"
) -> dict[str, Any]:
    return {
        "path": path,
        "entries": [_entry(e) for e in await control.inside.list_dir(principal, shell_id, path)],
    }


@router.get("/v1/shells/{shell_id}/files/stat", responses=FILES)
async def stat_file(control: ControlDep, principal: PrincipalDep, shell_id: str, path: str) -> dict[str, Any]:
    return _entry(await control.inside.stat(principal, shell_id, path))


@router.post("/v1/shells/{shell_id}/files/mkdir", status_code=201, responses=FILES)
async def mkdir(control: ControlDep, principal: PrincipalDep, shell_id: str, path: str) -> dict[str, Any]:
    await control.inside.mkdir(principal, shell_id, path, DOOR)
    return {"path": path}
