"""The gateway of the HTTP transport: the control layer, called in the server's own process as one
principal through door ``mcp``. Each method is the REST route's body (``api/routes*.py``), so both
doors answer alike: the same parsers, the same ``authorize``, the same wire forms."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

from ..control.requests import CreateShellRequest, parse_exec
from ..control.run_code import RunRequest
from ..control.service import Control
from ..domain.execution import collect
from ..domain.principal import Principal
from .gateway import Json

DOOR = "mcp"


class ControlGateway:
    def __init__(self, control: Control, principal: Principal, terminal_url: Callable[[str], str]) -> None:
        """``terminal_url(shell_id)`` is the WebSocket URL of the shell's terminal as the caller
        reaches this server."""
        self.control = control
        self.principal = principal
        self.terminal_url = terminal_url

    async def runtimes(self) -> list[Json]:
        return self.control.runtimes()

    async def list_shells(self, filters: dict[str, str]) -> list[Json]:
        shells = self.control.shells.list(self.principal, **filters)
        return [self.control.ctx.public(s) for s in shells]

    async def list_secrets(self) -> list[Json]:
        return [s.to_public() for s in self.control.secrets.list_secrets(self.principal)]

    async def list_volumes(self) -> list[Json]:
        return self.control.storage.list_volumes(self.principal)

    async def list_bucket_credentials(self) -> list[Json]:
        return [r.to_public() for r in self.control.bucket_credentials.list(self.principal)]

    async def create_shell(self, body: Json) -> Json:
        shell = await self.control.shells.create(self.principal, CreateShellRequest.parse(body), DOOR)
        return self.control.ctx.public(shell)

    async def delete_shell(self, shell_id: str) -> None:
        await self.control.shells.delete(self.principal, shell_id, DOOR)

    async def act(self, shell_id: str, capability: str, params: Json) -> Json:
        shell, result = await self.control.shells.act(self.principal, shell_id, capability, DOOR, params)
        return {"shell": self.control.ctx.public(shell), "result": result}

    async def mint_terminal(self, shell_id: str, body: Json) -> Json:
        cred, token = self.control.terminals.mint(self.principal, shell_id, body)
        return {
            "id": cred.id,
            "token": token,
            "expires_at": cred.expires_at.isoformat(),
            "url": self.terminal_url(cred.shell_id),
        }

    async def exec(self, shell_id: str, body: Json) -> Json:
        events = await self.control.inside.exec(self.principal, shell_id, parse_exec(body), DOOR)
        return (await collect(events)).to_public()

    async def run_code(self, shell_id: str, body: Json) -> Json:
        events = await self.control.run_code.run(self.principal, shell_id, RunRequest.parse(body), DOOR)
        return (await collect(events)).to_public()

    async def read_file(self, shell_id: str, path: str, max_bytes: int) -> bytes:
        chunks = await self.control.inside.read_file(self.principal, shell_id, path)
        return await _head(chunks, max_bytes)

    async def write_file(self, shell_id: str, path: str, data: bytes, mode: int) -> Json:
        async def body() -> AsyncIterator[bytes]:
            yield data

        size = await self.control.inside.write_file(self.principal, shell_id, path, body(), mode, DOOR)
        return {"path": path, "size": size}

    async def list_files(self, shell_id: str, path: str) -> Json:
        entries = await self.control.inside.list_dir(self.principal, shell_id, path)
        return {"path": path, "entries": [dataclasses.asdict(e) for e in entries]}

    async def metrics(self, shell_id: str, start: float) -> Json:
        samples = self.control.samples.series(self.principal, shell_id, start, None)
        interval = self.control.samples.interval_s
        return {"shell_id": shell_id, "interval_s": interval, "samples": [x.to_public() for x in samples]}


async def _head(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes of a stream; the rest is never read."""
    data = bytearray()
    try:
        async for chunk in chunks:
            data += chunk
            if len(data) >= max_bytes:
                break
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return bytes(data[:max_bytes])
