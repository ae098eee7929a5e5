"""The gateway of ``shells mcp``: a Shells server's REST API through the SDK's HTTP layer (its token,
request ids, retry rules and error mapping), every call sent with door ``mcp`` so the server checks
the ``shells.agent.invoke`` entitlement and records the door."""

from __future__ import annotations

from urllib.parse import quote

from ..sdk._async.http import AsyncHTTP
from ..sdk.connection import DEFAULT_TIMEOUT_S, DOOR_HEADER
from ..sdk.retry import RetryPolicy
from .gateway import Json


class SdkGateway:
    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        """``base_url`` and ``token`` default to ``SHELLS_BASE_URL`` and ``SHELLS_API_TOKEN``.

        Raises:
            Unauthenticated: no token was given and ``SHELLS_API_TOKEN`` is not set.
        """
        self.http = AsyncHTTP(
            base_url,
            token,
            timeout=DEFAULT_TIMEOUT_S,
            retry=RetryPolicy(),
            transport=None,
            headers={DOOR_HEADER: "mcp"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _shell(shell_id: str) -> str:
        return f"/v1/shells/{quote(shell_id, safe='')}"

    async def runtimes(self) -> list[Json]:
        return list((await self.http.call("GET", "/v1/runtimes"))["runtimes"])

    async def list_shells(self, filters: dict[str, str]) -> list[Json]:
        return list((await self.http.call("GET", "/v1/shells", params=filters))["shells"])

    async def list_secrets(self) -> list[Json]:
        return list((await self.http.call("GET", "/v1/secrets"))["secrets"])

    async def list_volumes(self) -> list[Json]:
        return list((await self.http.call("GET", "/v1/volumes"))["volumes"])

    async def list_bucket_credentials(self) -> list[Json]:
        return list((await self.http.call("GET", "/v1/bucket-credentials"))["bucket_credentials"])

    async def create_shell(self, body: Json) -> Json:
        return dict(await self.http.call("POST", "/v1/shells", body=body))

    async def delete_shell(self, shell_id: str) -> None:
        await self.http.call("DELETE", self._shell(shell_id))

    async def act(self, shell_id: str, capability: str, params: Json) -> Json:
        path = f"{self._shell(shell_id)}/actions/{quote(capability, safe='')}"
        return dict(await self.http.call("POST", path, body=params))

    async def mint_terminal(self, shell_id: str, body: Json) -> Json:
        return dict(await self.http.call("POST", f"{self._shell(shell_id)}/term", body=body))

    async def exec(self, shell_id: str, body: Json) -> Json:
        return await self._wait(f"{self._shell(shell_id)}/exec", body)

    async def run_code(self, shell_id: str, body: Json) -> Json:
        return await self._wait(f"{self._shell(shell_id)}/run", body)

    async def _wait(self, path: str, body: Json) -> Json:
        return dict(await self.http.call("POST", path, params={"wait": "true"}, body=body, unbounded=True))

    async def read_file(self, shell_id: str, path: str, max_bytes: int) -> bytes:
        data = bytearray()
        async with self.http.stream("GET", f"{self._shell(shell_id)}/files", params={"path": path}) as r:
            async for chunk in r.aiter_bytes():
                data += chunk
                if len(data) >= max_bytes:
                    break
        return bytes(data[:max_bytes])

    async def write_file(self, shell_id: str, path: str, data: bytes, mode: int) -> Json:
        params = {"path": path, "mode": f"{mode:o}"}
        return dict(
            await self.http.call("PUT", f"{self._shell(shell_id)}/files", params=params, content=data)
        )

    async def list_files(self, shell_id: str, path: str) -> Json:
        return dict(await self.http.call("GET", f"{self._shell(shell_id)}/files/list", params={"path": path}))

    async def metrics(self, shell_id: str, start: float) -> Json:
        return dict(
            await self.http.call("GET", f"{self._shell(shell_id)}/metrics", params={"start": str(start)})
        )
