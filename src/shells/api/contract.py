"""How a route reads its typed body, and the error answers its operation declares.

``BodyRoute`` is the route class of every REST router. For a route whose signature takes a body
model (``control.bodies``) it reads the body the way the API always has, before FastAPI sees it:
capped at ``MAX_JSON_BODY_BYTES`` (413), integers within 64 bits, any content type read as JSON, an
empty body read as ``{}`` (``deps.json_body``). FastAPI then validates it against the model, and a
body that does not fit answers ``bodies.invalid``'s typed 400, never FastAPI's 422.

``errors(...)`` builds an operation's ``responses=``: each status it really answers, all with the one
error body (``ErrorBody``) that ``api.errors`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.datastructures import MutableHeaders

from ..control.bodies import invalid
from .deps import json_body

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class BodyRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        model = body_model(self)
        if model is None:
            return handler

        async def read_then_handle(request: Request) -> Response:
            body = await json_body(request)
            headers = MutableHeaders(raw=list(request.headers.raw))
            headers["content-type"] = "application/json"
            # Starlette caches what it read on the request; FastAPI reads these instead of the stream.
            request._headers = headers
            request._body = json.dumps(body).encode()
            request._json = body
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] == ("body",)]
                if not problems:
                    raise
                raise invalid(model, [{**e, "loc": tuple(e["loc"])[1:]} for e in problems]) from None

        return read_then_handle


def body_model(route: APIRoute) -> type[BaseModel] | None:
    """The pydantic model a route takes as its body, if it takes one."""
    if route.body_field is None:
        return None
    annotation = route.body_field.field_info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


class ErrorDetail(BaseModel):
    code: str = Field(description="The stable error code (domain/errors.py), e.g. invalid_request.")
    message: str = Field(description="A sentence saying what went wrong and what to fix.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Machine-readable context, e.g. the field at fault."
    )


class ErrorBody(BaseModel):
    """Every error answer; the request's id is in the ``X-Request-Id`` header of every answer."""

    error: ErrorDetail


WHY: dict[int, str] = {
    400: "Bad input: a body, parameter or header that does not fit (code invalid_request …).",
    401: "No valid bearer token (unauthenticated, credential_expired, credential_revoked).",
    403: "The token may not do this, or a quota or budget is spent (permission_denied, quota_exceeded).",
    404: "What the path names does not exist, or the caller may not see it.",
    408: "The request body stopped arriving (request_timeout).",
    409: "The state does not allow it now (invalid_state, feature_unavailable, already_exists …).",
    413: "The body is larger than the server accepts (payload_too_large).",
    406: "MCP: the Accept header allows neither JSON nor an event stream.",
    415: "MCP: the body is not application/json.",
    421: "MCP: the Host header names no host this server answers for (misdirected_request).",
    422: "A template build failed (template_build_failed).",
    429: "Too many requests from this token; see Retry-After (rate_limited).",
    500: "The runtime failed (runtime_failure); the message names the request, not host detail.",
    502: "The agent inside the shell answered wrongly (agent_error).",
    503: "The server is shutting down or a part is unavailable; see Retry-After.",
    504: "The operation ran past its deadline (timeout).",
}

ANYONE = (400, 503)
"""What any operation may answer: a bad request id or door header, or the drain."""
AUTHED = (*ANYONE, 401, 403, 429)
"""What an operation behind a bearer token adds: no token, not allowed, the token's rate limit."""
BODY = (408, 413)
"""What an operation that reads a body adds."""
INSIDE = (404, 409, 500, 502, 504)
"""What an operation that reaches into a shell adds."""


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the given error statuses (duplicates allowed), each with ``ErrorBody``."""
    return {s: {"model": ErrorBody, "description": WHY[s]} for s in sorted(set(statuses))}
