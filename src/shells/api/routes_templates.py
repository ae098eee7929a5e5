"""REST v1 for templates: list, show, build (NDJSON progress), save a shell, delete."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.bodies import BuildTemplateBody, SaveTemplateBody
from ..control.templates import BuildFinished, BuildRequest, BuildUpdate, SaveRequest
from ..domain.errors import RuntimeFailure, ShellsError
from ..domain.isolation import PRESET_TEMPLATES
from ..domain.templates import BuildOutput, BuildStepStarted
from .contract import AUTHED, BODY, INSIDE, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep
from .exec_stream import NDJSON, error_line
from .stream_docs import BUILD_RESPONSES

router = APIRouter(route_class=BodyRoute)


@router.get("/v1/templates", responses=errors(*AUTHED))
async def list_templates(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {
        "templates": [t.to_public() for t in control.templates.list(principal)],
        "presets": {language.value: name for language, name in PRESET_TEMPLATES.items()},
    }


@router.get("/v1/templates/{name}", responses=errors(*AUTHED, 404))
async def get_template(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.templates.get(principal, name).to_public()


@router.delete("/v1/templates/{name}", status_code=204, responses=errors(*AUTHED, 404, 409))
async def delete_template(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    await control.templates.delete(principal, name, DOOR)
    return Response(status_code=204)


@router.post("/v1/templates", status_code=201, responses=errors(*AUTHED, *BODY, *INSIDE))
async def save_template(
    control: ControlDep, principal: PrincipalDep, body: SaveTemplateBody
) -> dict[str, Any]:
    return (await control.templates.save(principal, SaveRequest.parse(body.wire()), DOOR)).to_public()


@router.post("/v1/templates/build", response_model=None, responses=BUILD_RESPONSES)
async def build_template(
    control: ControlDep, principal: PrincipalDep, body: BuildTemplateBody, wait: bool = False
) -> JSONResponse | StreamingResponse:
    """Build a template: NDJSON progress lines, or with ``?wait=true`` the template."""
    updates = await control.templates.build(principal, BuildRequest.parse(body.wire()), DOOR)
    if wait:
        async for update in updates:
            if isinstance(update, BuildFinished):
                return JSONResponse(update.template.to_public())
        raise RuntimeFailure("The build ended without a result.")
    return StreamingResponse(_lines(updates), media_type=NDJSON)


def _line(update: BuildUpdate) -> dict[str, Any]:
    if isinstance(update, BuildStepStarted):
        return {"type": "step", "index": update.index, "total": update.total, "name": update.name}
    if isinstance(update, BuildOutput):
        return {"type": "output", "data": update.data}
    if update.cached:
        return {"type": "cached", "template": update.template.to_public()}
    return {"type": "done", "template": update.template.to_public(), "seconds": update.seconds}


async def _lines(updates: AsyncIterator[BuildUpdate]) -> AsyncIterator[bytes]:
    try:
        async for update in updates:
            yield json.dumps(_line(update)).encode() + b"\n"
    except ShellsError as exc:
        yield error_line(exc)
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
