"""REST v1: run a code snippet in a shell with its language's interpreter or compiler."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.bodies import RunBody
from ..control.run_code import RunRequest
from .contract import BodyRoute
from .deps import DOOR, ControlDep, DrainDep, PrincipalDep
from .exec_stream import exec_response
from .stream_docs import EXEC_RESPONSES

router = APIRouter(route_class=BodyRoute)


@router.post("/v1/shells/{shell_id}/run", response_model=None, responses=EXEC_RESPONSES)
async def run_code(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    body: RunBody,
    drain: DrainDep,
    wait: bool = False,
) -> JSONResponse | StreamingResponse:
    events = await control.run_code.run(principal, shell_id, RunRequest.parse(body.wire()), DOOR)
    return await exec_response(events, wait, drain)
