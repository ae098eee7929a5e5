"""The Kubernetes API calls a Shells cluster makes: Leases (coordination.k8s.io/v1) and a Node's
labels. A thin client over httpx, so the server needs no Kubernetes client library. Where the API is
and who we are comes from ``KubeConfig``: a URL, a bearer token (or a file holding it, such as a
pod's service-account token) and the CA that signed the API server's certificate."""

from __future__ import annotations

import ssl
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


class KubeError(Exception):
    """The API answered something other than what the call needs (the status and its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status


class Conflict(KubeError):
    """409: the object changed (or exists) since it was read; read it again and decide again."""


class NotFound(KubeError):
    """404: no such object."""


@dataclass(frozen=True)
class KubeConfig:
    url: str
    token: str
    ca_file: str | None = None
    """None verifies against the system's CAs; a test API server passes its own CA."""
    namespace: str = "default"
    token_file: str | None = None
    """Read the token from this file at every call instead (a pod's projected token is rotated)."""


class _Bearer(httpx.Auth):
    def __init__(self, config: KubeConfig) -> None:
        self.config = config

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.config.token
        if self.config.token_file:
            token = Path(self.config.token_file).read_text(encoding="utf-8").strip()
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class Kube:
    """Async calls to one API server. ``timeout_s`` bounds every call: a lease renewal that cannot
    finish in time must fail, not hang past the lease."""

    def __init__(self, config: KubeConfig, timeout_s: float = 5.0) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.url,
            auth=_Bearer(config),
            verify=ssl.create_default_context(cafile=config.ca_file),
            timeout=timeout_s,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await self._http.request(method, path, json=body)
        if r.status_code < 300:
            answer: dict[str, Any] = r.json()
            return answer
        try:
            message = str(r.json().get("message", r.text))
        except ValueError:
            message = r.text[:300]
        error = {404: NotFound, 409: Conflict}.get(r.status_code, KubeError)
        raise error(r.status_code, message)

    # Leases ---------------------------------------------------------------------------------------
    def _leases(self) -> str:
        return LEASES.format(ns=self.config.namespace)

    async def get_lease(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"{self._leases()}/{name}")

    async def create_lease(
        self, name: str, spec: dict[str, Any], labels: dict[str, str], annotations: dict[str, str]
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": spec,
        }
        return await self._call("POST", self._leases(), body)

    async def replace_lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        """PUT with the ``resourceVersion`` that was read: a concurrent change is a ``Conflict``."""
        return await self._call("PUT", f"{self._leases()}/{lease['metadata']['name']}", lease)

    async def list_leases(self, selector: str) -> list[dict[str, Any]]:
        answer = await self._call("GET", f"{self._leases()}?labelSelector={selector}")
        return list(answer.get("items", []))

    async def delete_lease(self, name: str) -> None:
        await self._call("DELETE", f"{self._leases()}/{name}")

    # Nodes ----------------------------------------------------------------------------------------
    async def node_labels(self, name: str) -> dict[str, str]:
        """The labels of the Kubernetes Node ``name`` (its region and zone live there)."""
        node = await self._call("GET", f"/api/v1/nodes/{name}")
        return dict(node["metadata"].get("labels") or {})
