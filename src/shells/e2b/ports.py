"""User ports in the E2B door's domain mode: ``https://{port}-{id}.{domain}`` (E2B's ``get_host``) is
forwarded to Shells' own ingress proxy as ``{port}-sh_{id}.{ingress domain}``, so a sandbox's port is
reached on exactly the ingress's terms: only a port its owner exposed (``POST
/v1/shells/{id}/ports``), without its token only if public, a paused sandbox woken or refused as
there. The door adds TLS and the E2B name, nothing else: what the ingress answers (its refusals
included) goes back as it is. Plain HTTP only: a WebSocket upgrade is not forwarded."""

from __future__ import annotations

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..control.service import Control
from ..domain.ids import looks_like
from ..domain.limits import E2B_PORT_CONNECT_TIMEOUT_S
from .ids import SHELL_PREFIX

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
DOOR_HEADERS = frozenset({"e2b-sandbox-id", "e2b-sandbox-port", "x-access-token", "x-api-key"})
"""The door's own routing and credentials: never shown to the server in the sandbox."""


class PortForward:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=E2B_PORT_CONNECT_TIMEOUT_S), follow_redirects=False
        )

    def _ingress(self) -> str:
        host = self.control.ctx.settings.ingress_host
        host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.control.network.ingress_port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send, sandbox: str, port: str) -> None:
        if not port.isdigit() or not looks_like(SHELL_PREFIX, f"{SHELL_PREFIX}_{sandbox}"):
            message = f"No sandbox {sandbox[:80]!r} with a port {port[:8]!r}."
            await JSONResponse({"code": 404, "message": message}, 404)(scope, receive, send)
            return
        request = Request(scope, receive)
        headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP | DOOR_HEADERS]
        domain = self.control.ctx.settings.ingress_domain
        headers.append(("host", f"{port}-{SHELL_PREFIX}_{sandbox}.{domain}"))
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        upstream = self.client.build_request(
            request.method,
            self._ingress() + target + (f"?{query}" if query else ""),
            headers=headers,
            content=request.stream(),
        )
        try:
            answer = await self.client.send(upstream, stream=True)
        except httpx.HTTPError:
            message = "Shells' ingress proxy did not answer; try again."
            await JSONResponse({"code": 502, "message": message}, 502)(scope, receive, send)
            return
        response = StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, background=BackgroundTask(answer.aclose)
        )
        response.raw_headers = [  # every header as the ingress sent it (repeated ones too)
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items()
            if k.lower() not in HOP_BY_HOP
        ]
        await response(scope, receive, send)

    async def close(self) -> None:
        await self.client.aclose()
