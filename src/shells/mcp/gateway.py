"""What the tools need from Shells, in the REST API's wire forms, so one tool set serves both doors:
in the server it is the control layer (``local.ControlGateway``), in ``shells mcp`` the SDK
(``remote.SdkGateway``). Errors are the ``ShellsError`` of the REST answer, code for code."""

from __future__ import annotations

from typing import Any, Protocol

Json = dict[str, Any]


class Gateway(Protocol):
    async def runtimes(self) -> list[Json]:
        """``GET /v1/runtimes``: every language in every isolation class, available or why not."""
        ...

    async def list_shells(self, filters: dict[str, str]) -> list[Json]:
        """``GET /v1/shells``: the records the caller may see (``state``, ``runtime``, ``label``)."""
        ...

    async def list_secrets(self) -> list[Json]:
        """``GET /v1/secrets``: the tenant's secrets by name, never a value."""
        ...

    async def list_volumes(self) -> list[Json]:
        """``GET /v1/volumes``: the tenant's volumes, with the shells that hold each."""
        ...

    async def list_bucket_credentials(self) -> list[Json]:
        """``GET /v1/bucket-credentials``: names and key ids of the tenant's stored credentials."""
        ...

    async def create_shell(self, body: Json) -> Json:
        """``POST /v1/shells``: the running shell's record."""
        ...

    async def delete_shell(self, shell_id: str) -> None:
        """``DELETE /v1/shells/{id}``."""
        ...

    async def act(self, shell_id: str, capability: str, params: Json) -> Json:
        """``POST /v1/shells/{id}/actions/{capability}``: ``{"shell", "result"}``."""
        ...

    async def mint_terminal(self, shell_id: str, body: Json) -> Json:
        """``POST /v1/shells/{id}/term``: ``{"id", "token", "expires_at", "url"}``."""
        ...

    async def exec(self, shell_id: str, body: Json) -> Json:
        """``POST /v1/shells/{id}/exec?wait=true``: output and exit status."""
        ...

    async def run_code(self, shell_id: str, body: Json) -> Json:
        """``POST /v1/shells/{id}/run?wait=true``: output and exit status."""
        ...

    async def read_file(self, shell_id: str, path: str, max_bytes: int) -> bytes:
        """``GET /v1/shells/{id}/files``: the file's first ``max_bytes`` bytes, or all of it if it is
        shorter (so ``max_bytes + 1`` asked tells whether there was more)."""
        ...

    async def write_file(self, shell_id: str, path: str, data: bytes, mode: int) -> Json:
        """``PUT /v1/shells/{id}/files``: ``{"path", "size"}``."""
        ...

    async def list_files(self, shell_id: str, path: str) -> Json:
        """``GET /v1/shells/{id}/files/list``: ``{"path", "entries"}``."""
        ...

    async def metrics(self, shell_id: str, start: float) -> Json:
        """``GET /v1/shells/{id}/metrics?start=``: ``{"shell_id", "interval_s", "samples"}``."""
        ...
