"""The streamable-HTTP transport, served by the Shells server at ``POST /api/agent/invoke``.

In order, each request: Host and Origin must name this server (DNS rebinding: a web page must not
reach a server on the victim's loopback through a name it controls); the bearer token must be
alive, within its rate and hold ``shells.agent.invoke`` (the door is ``mcp`` whatever the request
says); the body must fit ``MAX_BODY_BYTES``. Then the MCP SDK's stateless transport answers with
one JSON object, and each tool runs as that principal in the control layer (``local``): the same
``authorize`` as REST, so another tenant's shell is the same ``shell_not_found``. Every tool call
leaves an audit event with door ``mcp``: the use case's own, or ``mcp.<tool>`` for reads and refusals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..control.request_scope import current_request, note_outcome, redacted, resume_request
from ..control.service import Control
from ..domain.audit import RequestInfo
from ..domain.errors import (
    InvalidRequest,
    MisdirectedRequest,
    PermissionDenied,
    RuntimeFailure,
    ShellsError,
)
from ..domain.principal import Principal
from ..settings import Settings
from .gateway import Gateway
from .local import DOOR, ControlGateway
from .server import build_server
from .tools import ToolSpec

PATH = "/api/agent/invoke"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A request body larger than this is refused with 413 before it is parsed (file writes included)."""
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_PRINCIPAL = "shells.principal"
_REQUEST = "shells.request"


def security_settings(settings: Settings) -> TransportSecuritySettings:
    """The Host values this server answers to (loopback names, the address it listens on, and
    ``SHELLS_MCP_ALLOWED_HOSTS``), any port; Origin, when a browser sends one, must be one of them."""
    names = [*LOOPBACK, *settings.mcp_allowed_hosts]
    if settings.host not in ("0.0.0.0", "::", ""):
        names.append(f"[{settings.host}]" if ":" in settings.host else settings.host)
    hosts = [h for name in dict.fromkeys(names) for h in (name, f"{name}:*")]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class _Handoff(Response):
    """A response that lets an ASGI app (the MCP transport) answer the request itself."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def refusal(answer: Response) -> ShellsError:
    """The transport guard's refusal as a typed error, answered in the API's error format (the
    guard's own answer is bare text without a content type)."""
    reason = bytes(answer.body).decode(errors="replace")
    if answer.status_code == 421:
        return MisdirectedRequest(f"{reason}: this server does not answer for that host name.")
    if answer.status_code == 403:
        return PermissionDenied(f"{reason}: requests from that web page are not allowed.")
    return InvalidRequest(f"{reason}: send the JSON-RPC message as application/json.")


class McpHttp:
    """The MCP door of one server; ``running()`` belongs in the app's lifespan."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.security = security_settings(control.ctx.settings)
        self._guard = TransportSecurityMiddleware(self.security)
        self.server: Server[Any] = build_server(self._open_call)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            security_settings=self.security,
            max_request_body_size=MAX_BODY_BYTES,
        )

    def running(self) -> AbstractAsyncContextManager[None]:
        return self.manager.run()

    async def invoke(self, request: Request) -> Response:
        """Check the request as the module docstring says, then hand it to the MCP transport."""
        refused = await self._guard.validate_request(request, is_post=True)
        if refused is not None:
            raise refusal(refused)
        info = current_request()
        if info is not None:
            info.door = DOOR  # before authentication, which asks for shells.agent.invoke on this door
        principal = self.control.auth.principal(request.headers.get("authorization"))
        request.scope[_PRINCIPAL] = principal
        request.scope[_REQUEST] = info
        return _Handoff(self.manager.handle_request)

    @asynccontextmanager
    async def _open_call(
        self, ctx: ServerRequestContext[Any], tool: ToolSpec, arguments: dict[str, Any]
    ) -> AsyncIterator[Gateway]:
        request = ctx.request
        assert isinstance(request, Request), "the HTTP transport passes the request to every call"
        principal: Principal = request.scope[_PRINCIPAL]
        info: RequestInfo | None = request.scope[_REQUEST]
        if info is not None:
            resume_request(info)  # this task was started by the transport: give it the request's scope

        def terminal_url(shell_id: str) -> str:
            url = request.url_for("terminal", shell_id=shell_id)
            return str(url.replace(scheme={"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)))

        status = 200
        try:
            yield ControlGateway(self.control, principal, terminal_url)
        except RuntimeFailure as exc:
            status = 500
            raise redacted(exc) from None
        except ShellsError as exc:
            note_outcome(exc.code)
            status = 400
            raise
        finally:
            if info is not None:
                self.control.audit.finish(
                    info, action=f"mcp.{tool.name}", target=tool.target(arguments), read=tool.read_only,
                    status=status,
                )  # fmt: skip
