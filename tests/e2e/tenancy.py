"""Tenants and principals for end-to-end tests: every caller is a real token minted through REST."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from .harness import ServerProcess

MEMBER = ["shells.read", "shells.create", "shells.act", "shells.destroy", "shells.exec", "shells.files",
          "shells.term"]  # fmt: skip
ADMIN = [*MEMBER, "tenant.admin"]


@dataclass
class Caller:
    """One principal holding one token, with an HTTP client that sends it."""

    principal: str
    tenant: str
    token: str
    token_id: str
    http: httpx.Client

    def close(self) -> None:
        self.http.close()


@dataclass
class Tenancy:
    server: ServerProcess
    callers: list[Caller] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.admin = self.client(self.server.token)

    def client(self, token: str | None, **headers: str) -> httpx.Client:
        auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.server.url, headers=auth | headers, timeout=120)

    def tenant(self, prefix: str = "t", **quotas: float) -> str:
        """A new tenant with a unique name (the server outlives one test module)."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        r = self.admin.post("/v1/tenants", json={"name": name, "quotas": quotas})
        assert r.status_code == 201, r.text
        return name

    def mint(self, tenant: str, principal: str, scopes: list[str], **extra: Any) -> dict[str, Any]:
        r = self.admin.post(
            "/v1/tokens", json={"tenant": tenant, "principal": principal, "scopes": scopes, **extra}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def caller(self, tenant: str, principal: str, scopes: list[str], **extra: Any) -> Caller:
        token = self.mint(tenant, principal, scopes, **extra)
        caller = Caller(principal, tenant, token["token"], token["id"], self.client(token["token"]))
        self.callers.append(caller)
        return caller

    def close(self) -> None:
        for caller in self.callers:
            caller.close()
        self.admin.close()


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == code, err
    return dict(err)


def create_shell(caller: Caller, **body: Any) -> str:
    r = caller.http.post("/v1/shells", json={"language": "bash", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])
