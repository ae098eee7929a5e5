"""REST v1: run a code snippet in a shell with its language's interpreter or compiler."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.run_code import RunRequest
from .deps import DOOR, BodyDep, ControlDep, DrainDep, PrincipalDep
from .exec_stream import exec_response

router = APIRouter()


@router.post("/v1/shells/{shell_id}/run", response_model=None)
async def run_code(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    body: BodyDep,
    drain: DrainDep,
    wait: bool = False,
) -> JSONResponse | StreamingResponse:
    events = await control.run_code.run(principal, shell_id, RunRequest.parse(body), DOOR)
    return await exec_response(events, wait, drain)
