"""REST v1 for templates and OCI images: import an image as a template, export a template as an image.

Both answer like a build: an NDJSON stream of steps and progress ending with the template, or with
``?wait=true`` the template as one JSON object (or the typed error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.image_templates import ExportRequest, ImportRequest
from ..control.templates import BuildFinished, BuildUpdate
from ..domain.errors import RuntimeFailure
from .deps import DOOR, BodyDep, ControlDep, PrincipalDep
from .exec_stream import NDJSON
from .routes_templates import _lines

router = APIRouter()

ERRORS = {
    400: {"description": "a bad reference, name or credentials object (invalid_image_reference, …)"},
    403: {"description": "the registry refused the credentials (registry_denied), or the token's scope"},
    404: {"description": "no such image on the registry (image_not_found) or template"},
    409: {"description": "the template name is taken (template_exists)"},
    422: {"description": "the image was refused: a bad layer, digest or platform (image_rejected)"},
    502: {"description": "the registry could not be reached or answered nonsense (registry_error)"},
}


async def _answer(updates: AsyncIterator[BuildUpdate], wait: bool) -> JSONResponse | StreamingResponse:
    if wait:
        async for update in updates:
            if isinstance(update, BuildFinished):
                return JSONResponse(update.template.to_public())
        raise RuntimeFailure("The import ended without a result.")
    return StreamingResponse(_lines(updates), media_type=NDJSON)


@router.post("/v1/templates/import", response_model=None, responses=ERRORS)  # type: ignore[arg-type]
async def import_image(
    control: ControlDep, principal: PrincipalDep, body: BodyDep, wait: bool = False
) -> JSONResponse | StreamingResponse:
    """Pull an OCI image from a registry and make it a template (``?wait=true``: one JSON answer)."""
    return await _answer(await control.images.import_image(principal, ImportRequest.parse(body), DOOR), wait)


@router.post("/v1/templates/export", response_model=None, responses=ERRORS)  # type: ignore[arg-type]
async def export_template(
    control: ControlDep, principal: PrincipalDep, body: BodyDep, wait: bool = False
) -> JSONResponse | StreamingResponse:
    """Push a template to a registry as an OCI image."""
    return await _answer(await control.images.export(principal, ExportRequest.parse(body), DOOR), wait)
