"""REST v1 for processes: commands that outlive the request that started them (``control.processes``).

``POST /v1/shells/{id}/processes`` starts one and answers at once with its pid; ``…/{pid}/attach``
streams its output from then on (NDJSON, as exec: started, stdout/stderr, exit), any number of times;
``…/{pid}/stdin`` writes to it, ``…/{pid}/stdin/close`` ends its input, ``…/{pid}/signal`` signals it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.bodies import ProcessBody, SignalBody
from ..control.processes import Process
from ..control.requests import parse_process, parse_signal
from ..domain.errors import PayloadTooLarge
from ..domain.execution import ExecEvent, ExecStarted
from ..domain.limits import MAX_JSON_BODY_BYTES
from .contract import AUTHED, BODY, INSIDE, BodyRoute, errors
from .deps import DOOR, ControlDep, DrainDep, PrincipalDep
from .exec_stream import exec_response

router = APIRouter(route_class=BodyRoute)
ERRORS = errors(*AUTHED, *INSIDE)
WRITE = errors(*AUTHED, *BODY, *INSIDE)
SIGTERM = SignalBody()


@router.post("/v1/shells/{shell_id}/processes", status_code=201, responses=WRITE)
async def start_process(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: ProcessBody
) -> dict[str, Any]:
    """``{"cmd": [...]} | {"command": "..."}`` with ``env``, ``cwd``, ``timeout_s``, ``user``, ``tag``
    and ``stdin`` (true: keep it open): runs on after this answer, until it exits or its timeout."""
    req = parse_process(body.wire())
    process, listener = await control.processes.start(
        principal, shell_id, req.spec, DOOR, tag=req.tag, wants_stdin=req.stdin
    )
    process.unlisten(listener)
    return process.to_public()


@router.get("/v1/shells/{shell_id}/processes", responses=ERRORS)
async def list_processes(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return {"processes": [p.to_public() for p in await control.processes.list(principal, shell_id)]}


@router.post("/v1/shells/{shell_id}/processes/{pid}/attach", response_model=None, responses=ERRORS)
async def attach_process(
    control: ControlDep, principal: PrincipalDep, drain: DrainDep, shell_id: str, pid: int
) -> JSONResponse | StreamingResponse:
    """The process's events from now on: ``started`` (its pid), output, then its ``exit``."""
    process = await control.processes.find(principal, shell_id, pid)
    return await exec_response(_from_now(process), False, drain)


async def _from_now(process: Process) -> AsyncIterator[ExecEvent]:
    listener = process.listen()
    yield ExecStarted(process.pid)
    async for event in process.follow(listener):
        yield event


@router.post("/v1/shells/{shell_id}/processes/{pid}/stdin", status_code=204, responses=WRITE)
async def write_stdin(
    control: ControlDep, principal: PrincipalDep, shell_id: str, pid: int, request: Request
) -> Response:
    """The body, as it is, to the process's stdin (at most 1 MiB a call)."""
    process = await control.processes.find(principal, shell_id, pid)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_JSON_BODY_BYTES:
            raise PayloadTooLarge(f"Send stdin in pieces of at most {MAX_JSON_BODY_BYTES} bytes.")
    await process.send(bytes(data))
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/processes/{pid}/stdin/close", status_code=204, responses=ERRORS)
async def close_stdin(control: ControlDep, principal: PrincipalDep, shell_id: str, pid: int) -> Response:
    await (await control.processes.find(principal, shell_id, pid)).close_stdin()
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/processes/{pid}/signal", status_code=204, responses=WRITE)
async def signal_process(
    control: ControlDep, principal: PrincipalDep, shell_id: str, pid: int, body: SignalBody = SIGTERM
) -> Response:
    """``{"signal": "TERM"}``: TERM (default), KILL, INT, HUP or QUIT to the process's group."""
    await control.processes.signal(principal, shell_id, pid, parse_signal(body.wire()), DOOR)
    return Response(status_code=204)
