"""The synchronous Python client. Every method is one REST call; errors are ShellsError subclasses."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from ..domain.errors import InvalidRequest
from .errors import raise_for_error

JSON = dict[str, Any]


class Shells:
    """A client for one Shells server: ``Shells()`` reads SHELLS_BASE_URL and SHELLS_API_TOKEN."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("SHELLS_BASE_URL") or "http://127.0.0.1:8080"
        token = token or os.environ.get("SHELLS_API_TOKEN")
        if not token:
            raise InvalidRequest("No API token: pass token=... or set SHELLS_API_TOKEN.")
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    def __enter__(self) -> Shells:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        r = self._http.request(method, url, **kwargs)
        raise_for_error(r)
        return r.json() if r.content else None

    # shells ---------------------------------------------------------------------------------------
    def info(self) -> JSON:
        return dict(self._json("GET", "/v1/info"))

    def create(
        self,
        language: str = "bash",
        *,
        runtime: str | None = None,
        network: str | JSON | None = None,
        shape: str | None = None,
        template: str | None = None,
        snapshot: str | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> JSON:
        body: JSON = {"language": language}
        extra = {
            "runtime": runtime,
            "network": {"mode": network} if isinstance(network, str) else network,
            "shape": shape,
            "template": template,
            "snapshot": snapshot,
            "name": name,
            "env": env,
            "labels": labels,
        }
        body |= {k: v for k, v in extra.items() if v is not None}
        return dict(self._json("POST", "/v1/shells", json=body))

    def get(self, shell_id: str) -> JSON:
        return dict(self._json("GET", f"/v1/shells/{shell_id}"))

    def list(
        self, *, state: str | None = None, runtime: str | None = None, label: str | None = None
    ) -> builtins.list[JSON]:
        params = {k: v for k, v in {"state": state, "runtime": runtime, "label": label}.items() if v}
        return list(self._json("GET", "/v1/shells", params=params)["shells"])

    def delete(self, shell_id: str) -> None:
        self._json("DELETE", f"/v1/shells/{shell_id}")

    def action(self, shell_id: str, capability: str, **params: Any) -> JSON:
        return dict(
            self._json("POST", f"/v1/shells/{shell_id}/actions", json={"capability": capability, **params})
        )

    def events(self, shell_id: str, after: int = 0) -> builtins.list[JSON]:
        return list(self._json("GET", f"/v1/shells/{shell_id}/events", params={"after": after})["events"])

    def snapshots(self, shell_id: str | None = None) -> builtins.list[JSON]:
        params = {"shell_id": shell_id} if shell_id else {}
        return list(self._json("GET", "/v1/snapshots", params=params)["snapshots"])

    # exec -----------------------------------------------------------------------------------------
    @staticmethod
    def _exec_body(
        cmd: builtins.list[str] | None,
        command: str | None,
        env: dict[str, str] | None,
        cwd: str | None,
        stdin: str | None,
        timeout_s: float | None,
    ) -> JSON:
        body: JSON = {"cmd": cmd} if cmd is not None else {"command": command}
        extra = {"env": env, "cwd": cwd, "stdin": stdin, "timeout_s": timeout_s}
        return body | {k: v for k, v in extra.items() if v is not None}

    def exec(
        self,
        shell_id: str,
        cmd: builtins.list[str] | None = None,
        *,
        command: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | None = None,
        timeout_s: float | None = None,
    ) -> JSON:
        """Run a command to completion: ``{"stdout", "stderr", "exit_code", ...}``."""
        body = self._exec_body(cmd, command, env, cwd, stdin, timeout_s)
        return dict(self._json("POST", f"/v1/shells/{shell_id}/exec", params={"wait": "true"}, json=body))

    def exec_stream(
        self,
        shell_id: str,
        cmd: builtins.list[str] | None = None,
        *,
        command: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[JSON]:
        """Yield stdout/stderr events ``{"type", "data"}`` as they come, then ``{"type": "exit", ...}``."""
        body = self._exec_body(cmd, command, env, cwd, stdin, timeout_s)
        with self._http.stream("POST", f"/v1/shells/{shell_id}/exec", json=body) as r:
            if not r.is_success:
                r.read()
                raise_for_error(r)
            for line in r.iter_lines():
                if line:
                    yield dict(json.loads(line))

    # files ----------------------------------------------------------------------------------------
    def read_file(self, shell_id: str, path: str) -> bytes:
        r = self._http.get(f"/v1/shells/{shell_id}/files", params={"path": path})
        raise_for_error(r)
        return r.content

    def write_file(self, shell_id: str, path: str, data: bytes | str, mode: int = 0o644) -> JSON:
        content = data.encode() if isinstance(data, str) else data
        params = {"path": path, "mode": f"{mode:o}"}
        return dict(self._json("PUT", f"/v1/shells/{shell_id}/files", params=params, content=content))

    def list_files(self, shell_id: str, path: str = "/workspace") -> builtins.list[JSON]:
        return list(self._json("GET", f"/v1/shells/{shell_id}/files/list", params={"path": path})["entries"])

    def remove_file(self, shell_id: str, path: str, *, recursive: bool = False) -> None:
        params = {"path": path, "recursive": str(recursive).lower()}
        self._json("DELETE", f"/v1/shells/{shell_id}/files", params=params)
