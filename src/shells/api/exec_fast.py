"""``POST /v1/shells/{id}/exec`` answered ahead of FastAPI's router and dependency solving.

Exec is the one call agents make in tight loops, and a profile put a large share of its server time
in Starlette's route matching (every route's pattern is tried in turn), FastAPI's dependency solving
and the body's round trip through FastAPI's validation. This ASGI middleware sits innermost of the
app's own middleware (drain, body timeout, request id and audit, latency, error answers all still
wrap it) and runs the very same steps as the route ``routes.exec_`` in the same order:

1. the JSON body read as every body is (``deps.json_body``: size cap 413, bad JSON 400, 408);
2. the bearer token (``auth.principal``: 401, expiry, revocation, the rate limit's 429);
3. ``?wait`` and the body validated against ``ExecBody`` (the typed 400 ``BodyRoute`` gives);
4. ``control.inside.exec`` (scopes, tenancy and role, suspension, state, limits, the audit row) and
   ``exec_stream.exec_response`` (the same answer, waited or streamed, under the drain).

The route stays registered: it carries the OpenAPI operation, and any request this handler does not
take as it stands (a query other than one ``wait``) goes to it unchanged. ``scope["route"]`` is set
to that route, so the request audit and the latency histogram name it as before.
"""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..control.bodies import ExecBody, invalid
from ..control.requests import parse_exec
from ..control.service import Control
from ..domain.errors import ShellsError
from . import routes
from .deps import DOOR, json_body
from .drain import Drain
from .errors import error_response
from .exec_stream import exec_response

ROUTE = "/v1/shells/{shell_id}/exec"
PATH = re.compile(r"/v1/shells/([^/]+)/exec")
WAIT = {
    **dict.fromkeys(("1", "true", "t", "yes", "y", "on"), True),
    **dict.fromkeys(("0", "false", "f", "no", "n", "off"), False),
}
"""The ``wait`` values the route's ``bool`` query parameter accepts (pydantic's, any case)."""


def _wait(query: bytes) -> bool | None:
    """``wait`` when the query is empty or one well-formed ``wait``; None for anything else, which
    the FastAPI route answers (its errors and its reading of odd queries stay the one truth)."""
    if not query:
        return False
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "wait":
        return None
    return WAIT.get(pairs[0][1].lower())


class FastExec:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route = next(r for r in routes.router.routes if isinstance(r, APIRoute) and r.path == ROUTE)
        """The route this stands in for: its operation in the OpenAPI document, its name in the
        request audit and the latency histogram."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        found = PATH.fullmatch(get_route_path(scope))
        wait = _wait(scope["query_string"]) if found is not None else None
        if found is None or wait is None:
            await self.app(scope, receive, send)
            return
        shell_id = found[1]
        scope["route"] = self.route
        scope["path_params"] = {"shell_id": shell_id}
        try:
            response = await self._exec(Request(scope, receive), shell_id, wait)
        except ShellsError as exc:
            response = error_response(exc)
        await response(scope, receive, send)

    async def _exec(self, request: Request, shell_id: str, wait: bool) -> Response:
        state = request.app.state
        control, drain = cast(Control, state.control), cast(Drain, state.drain)
        body = await json_body(request)
        principal = control.auth.principal(request.headers.get("authorization"))
        try:
            model = ExecBody.model_validate(body)
        except ValidationError as exc:
            raise invalid(ExecBody, exc.errors()) from None
        events = await control.inside.exec(principal, shell_id, parse_exec(model.wire()), DOOR)
        return await exec_response(events, wait, drain)
