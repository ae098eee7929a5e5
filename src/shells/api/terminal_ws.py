"""The terminal door: mint, list and revoke terminal credentials over REST, and the live terminal over
a WebSocket at ``/v1/shells/{id}/term/ws``.

The WebSocket protocol (also in docs/security.md):

- Authenticate with ``?token=term_…`` in the URL, or leave it out and send
  ``{"type": "auth", "token": "term_…"}`` as the first message (within 10 s). ``?cols=&rows=`` set the
  first window size (default 80x24).
- Client → server: binary frames are keystrokes (raw bytes); text frames are JSON:
  ``{"type": "input", "data": "ls\\n"}`` or ``{"type": "resize", "cols": 120, "rows": 40}``.
- Server → client: binary frames are terminal output (raw bytes); text frames are JSON:
  ``{"type": "ready", "expires_at", "cols", "rows"}`` once attached,
  ``{"type": "exit", "exit_code", "signal"}`` when the process ends (then close 1000), and
  ``{"type": "error", "error": {"code", "message", "details"}}``. A fatal error is followed by a close
  with code 4000 + the HTTP status of the error (4401 when the credential expires or is revoked
  mid-session, 4409 when it is attached elsewhere); a bad control message is answered with an error
  and the session goes on.
- A credential refused during the handshake (``?token=``) is a plain HTTP answer instead: the same
  status and JSON error body as the REST API.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from fastapi import APIRouter, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from ..control.bodies import TermBody
from ..control.service import Control
from ..control.terminal import TerminalSession
from ..domain.errors import InvalidRequest, ShellsError
from ..domain.execution import ExecExit
from .contract import AUTHED, BODY, BodyRoute, errors
from .deps import ControlDep, PrincipalDep
from .errors import error_body, status_for

router = APIRouter(route_class=BodyRoute)
DEFAULT_TERM = TermBody()
AUTH_TIMEOUT_S = 10.0


@router.post("/v1/shells/{shell_id}/term", status_code=201, responses=errors(*AUTHED, *BODY, 404, 409))
async def mint_terminal(
    control: ControlDep,
    principal: PrincipalDep,
    shell_id: str,
    request: Request,
    body: TermBody = DEFAULT_TERM,
) -> dict[str, Any]:
    cred, token = control.terminals.mint(principal, shell_id, body.wire())
    url = request.url_for("terminal", shell_id=cred.shell_id)
    url = url.replace(scheme={"http": "ws", "https": "wss"}.get(url.scheme, url.scheme))
    return {"id": cred.id, "token": token, "expires_at": cred.expires_at.isoformat(), "url": str(url)}


@router.get("/v1/shells/{shell_id}/term", responses=errors(*AUTHED, 404))
async def list_terminals(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return {
        "credentials": [
            cred.to_public(in_use=in_use)
            for cred, in_use in control.terminals.credentials(principal, shell_id)
        ]
    }


@router.delete("/v1/shells/{shell_id}/term/{credential_id}", status_code=204, responses=errors(*AUTHED, 404))
async def revoke_terminal(
    control: ControlDep, principal: PrincipalDep, shell_id: str, credential_id: str
) -> Response:
    control.terminals.revoke(principal, shell_id, credential_id)
    return Response(status_code=204)


def _window(cols: str, rows: str) -> tuple[int, int]:
    try:
        return int(cols), int(rows)
    except ValueError:
        raise InvalidRequest("'cols' and 'rows' must be whole numbers.", {"field": "cols"}) from None


async def _auth_message(websocket: WebSocket) -> str:
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            text = await websocket.receive_text()
        message = json.loads(text)
    except (TimeoutError, ValueError, KeyError):
        message = None
    if not (
        isinstance(message, dict) and message.get("type") == "auth" and isinstance(message.get("token"), str)
    ):
        raise InvalidRequest(
            'Without ?token= in the URL, the first message must be {"type": "auth", "token": "term_…"} '
            f"within {AUTH_TIMEOUT_S:g} s."
        )
    return str(message["token"])


@router.websocket("/v1/shells/{shell_id}/term/ws", name="terminal")
async def terminal(
    websocket: WebSocket, shell_id: str, token: str | None = None, cols: str = "80", rows: str = "24"
) -> None:
    control = cast(Control, websocket.app.state.control)
    accepted = False
    try:
        if token is None:
            await websocket.accept()
            accepted = True
            token = await _auth_message(websocket)
        width, height = _window(cols, rows)
        async with control.terminals.attach(token, shell_id, width, height) as session:
            if not accepted:
                await websocket.accept()
                accepted = True
            relay = _Relay(websocket, session)
            await relay.send_json(
                {"type": "ready", "expires_at": session.expires_at.isoformat(), "cols": width, "rows": height}
            )
            exited = await relay.run()
        if exited:
            await websocket.close(1000, "the process exited")
    except WebSocketDisconnect:
        return
    except ShellsError as exc:
        body = error_body(exc.code, exc.message, exc.details)
        if not accepted:
            await websocket.send_denial_response(JSONResponse(body, status_for(exc)))
            return
        try:
            await websocket.send_json({"type": "error", **body})
            await websocket.close(4000 + status_for(exc), exc.code)
        except (WebSocketDisconnect, RuntimeError):  # the client is gone already
            pass


class _Relay:
    """Copies output to the client and keystrokes and resizes to the terminal, until either side ends."""

    def __init__(self, websocket: WebSocket, session: TerminalSession) -> None:
        self.websocket = websocket
        self.session = session
        self._sending = asyncio.Lock()

    async def send_json(self, message: dict[str, Any]) -> None:
        async with self._sending:
            await self.websocket.send_json(message)

    async def run(self) -> bool:
        """True when the process exited, False when the client left; raises the session's error."""
        outbound = asyncio.create_task(self._outbound())
        inbound = asyncio.create_task(self._inbound())
        done, pending = await asyncio.wait({outbound, inbound}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()
        return outbound in done

    async def _outbound(self) -> None:
        while True:
            item = await self.session.read()
            if isinstance(item, ExecExit):
                await self.send_json({"type": "exit", "exit_code": item.exit_code, "signal": item.signal})
                return
            async with self._sending:
                await self.websocket.send_bytes(item)

    async def _inbound(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.session.write(message["bytes"])
            elif message.get("text") is not None:
                try:
                    await self._control(message["text"])
                except InvalidRequest as exc:
                    await self.send_json({"type": "error", **error_body(exc.code, exc.message, exc.details)})

    async def _control(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "input" and isinstance(message, dict) and isinstance(message.get("data"), str):
            await self.session.write(message["data"].encode())
        elif kind == "resize" and isinstance(message, dict):
            await self.session.resize(message.get("cols"), message.get("rows"))
        else:
            raise InvalidRequest(
                'Send {"type": "input", "data": "…"} or {"type": "resize", "cols": N, "rows": N} as text, '
                "or keystrokes as binary frames."
            )
