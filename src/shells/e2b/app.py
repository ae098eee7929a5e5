"""The E2B door's one ASGI app: a request without ``E2b-Sandbox-Id`` is for the control plane; with
it, for the sandbox's envd (Connect RPC services by path, else its plain-HTTP routes). In domain mode
(``e2b.domain``) a Host ``{port}-{id}.{domain}`` sets those headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from ..control.request_scope import begin_request
from ..control.service import Control
from ..domain.audit import request_id_from
from .access import DoorAccess, load_secret
from .domain import routed_by_host
from .envd.files import EnvdFiles
from .envd.filesystem_service import FilesystemService
from .envd.gen.filesystem.filesystem_connect import FilesystemASGIApplication
from .envd.gen.process.process_connect import ProcessASGIApplication
from .envd.process_service import ProcessService
from .ports import PortForward
from .sandboxes import DOOR, Sandboxes
from .watchers import Watchers

ENVD_PORT = "49983"
"""The port E2B's SDK names for envd (``E2b-Sandbox-Port``); any other is a user port."""
FILES_PATH = "/files"


class E2bDoor:
    def __init__(self, control: Control) -> None:
        access = DoorAccess(control, load_secret(control.ctx.settings.data_dir / "e2b-secret"))
        self.domain = control.ctx.settings.e2b_domain
        self.watchers = Watchers()
        self.ports = PortForward(control)
        self.control_plane = Starlette(routes=Sandboxes(control, access).routes())
        self.envd_http = Starlette(routes=EnvdFiles(control, access).routes())
        self.process = ProcessASGIApplication(ProcessService(control, access))
        self.filesystem = FilesystemASGIApplication(FilesystemService(control, access, self.watchers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # the main app owns the lifespan; the door serves no WebSocket
        if self.domain:
            scope = routed_by_host(scope, self.domain)
        headers = Headers(scope=scope)
        begin_request(request_id_from(headers.get("x-request-id")), DOOR)
        path: str = scope["path"]
        if "e2b-sandbox-id" not in headers:
            # a signed file URL names no sandbox (its signature does); the control plane has no /files
            await (self.envd_http if path == FILES_PATH else self.control_plane)(scope, receive, send)
            return
        port = headers.get("e2b-sandbox-port", ENVD_PORT)
        if port != ENVD_PORT:  # a user port: Shells' ingress serves it, on its own terms
            await self.ports(scope, receive, send, headers["e2b-sandbox-id"], port)
            return
        if path.startswith("/process.Process/"):
            await self.process(scope, receive, send)
        elif path.startswith("/filesystem.Filesystem/"):
            await self.filesystem(scope, receive, send)
        else:
            await self.envd_http(scope, receive, send)

    async def close(self) -> None:
        await self.watchers.close()
        await self.ports.close()
