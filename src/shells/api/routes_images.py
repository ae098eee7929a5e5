"""REST v1 for templates and OCI images: import an image as a template, export a template as an image.

Both answer like a build: an NDJSON stream of steps and progress ending with the template, or with
``?wait=true`` the template as one JSON object (or the typed error).
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..control.bodies import ExportBody, ImportBody
from ..control.image_templates import ExportRequest, ImportRequest
from ..control.templates import BuildFinished, BuildUpdate
from ..domain.errors import InvalidRequest, PayloadTooLarge, RuntimeFailure
from ..domain.limits import BUILD_CONTEXT_MAX_BYTES
from ..runtime.oci.registry import Credentials
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep
from .exec_stream import NDJSON
from .routes_templates import _lines

router = APIRouter(route_class=BodyRoute)
ERRORS = errors(*AUTHED, *BODY, 404, 409, 422, 502)
"""400 a bad reference, name, credentials or Dockerfile line; 403 the registry refused the
credentials (registry_denied) or the token's scope; 404 no such image or template; 409 the name is
taken; 413 a build context too large; 422 an image refused (image_rejected) or a failed step; 502 a
registry that could not be reached or answered nonsense (registry_error)."""


def _registry_auth(value: str | None) -> Credentials | None:
    if value is None:
        return None
    try:
        username, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        sep = ""
    if not sep or not username or not password:
        raise InvalidRequest(
            "X-Shells-Registry-Auth must be base64 of 'username:password'.",
            {"field": "X-Shells-Registry-Auth"},
        )
    return Credentials(username, password)


async def _answer(updates: AsyncIterator[BuildUpdate], wait: bool) -> JSONResponse | StreamingResponse:
    if wait:
        async for update in updates:
            if isinstance(update, BuildFinished):
                return JSONResponse(update.template.to_public())
        raise RuntimeFailure("The import ended without a result.")
    return StreamingResponse(_lines(updates), media_type=NDJSON)


@router.post("/v1/templates/import", response_model=None, responses=ERRORS)
async def import_image(
    control: ControlDep, principal: PrincipalDep, body: ImportBody, wait: bool = False
) -> JSONResponse | StreamingResponse:
    """Pull an OCI image from a registry and make it a template (``?wait=true``: one JSON answer)."""
    request = ImportRequest.parse(body.wire())
    return await _answer(await control.images.import_image(principal, request, DOOR), wait)


@router.post("/v1/templates/dockerfile", response_model=None, responses=ERRORS)
async def build_dockerfile(
    control: ControlDep,
    principal: PrincipalDep,
    request: Request,
    name: str,
    dockerfile: str = "Dockerfile",
    wait: bool = False,
    x_shells_registry_auth: Annotated[str | None, Header()] = None,
) -> JSONResponse | StreamingResponse:
    """Build template ``name`` from a Dockerfile; the body is the build context as a tar (gzip or
    not) holding the Dockerfile at ``dockerfile``. A step that fails is 422 naming its line. When
    FROM names an image in a registry, ``X-Shells-Registry-Auth: base64(username:password)`` are the
    credentials for it (a header, so they are in no URL or log)."""
    credentials = _registry_auth(x_shells_registry_auth)
    control.dockerfiles.scratch.mkdir(parents=True, exist_ok=True)
    upload = control.dockerfiles.scratch / f"{os.urandom(8).hex()}.tar"
    try:
        size = 0
        with upload.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > BUILD_CONTEXT_MAX_BYTES:
                    raise PayloadTooLarge(
                        f"The build context is larger than {BUILD_CONTEXT_MAX_BYTES} bytes.",
                        {"limit": BUILD_CONTEXT_MAX_BYTES},
                    )
                out.write(chunk)
        updates = await control.dockerfiles.build(principal, name, upload, dockerfile, DOOR, credentials)
    finally:
        upload.unlink(missing_ok=True)
    return await _answer(updates, wait)


@router.post("/v1/templates/export", response_model=None, responses=ERRORS)
async def export_template(
    control: ControlDep, principal: PrincipalDep, body: ExportBody, wait: bool = False
) -> JSONResponse | StreamingResponse:
    """Push a template to a registry as an OCI image."""
    request = ExportRequest.parse(body.wire())
    return await _answer(await control.images.export(principal, request, DOOR), wait)
