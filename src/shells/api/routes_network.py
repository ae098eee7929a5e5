"""REST v1 for networking: a shell's policy and blocked log, private networks, exposed ports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from ..domain.errors import InvalidRequest
from .deps import DOOR, BodyDep, ControlDep, PrincipalDep

router = APIRouter()


@router.get("/v1/shells/{shell_id}/network")
async def shell_network(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """The policy, the private networks, the addresses and the blocked log (newest first)."""
    return control.network.describe(principal, shell_id)


@router.put("/v1/shells/{shell_id}/network")
async def set_shell_network(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: BodyDep
) -> dict[str, Any]:
    """``{"mode": "internet", "allow": [...]}``: applied to a running shell at once."""
    return await control.network.set_policy(principal, shell_id, body, DOOR)


@router.post("/v1/networks", status_code=201)
async def create_network(control: ControlDep, principal: PrincipalDep, body: BodyDep) -> dict[str, Any]:
    return control.network.create_network(principal, body, DOOR).to_public()


@router.get("/v1/networks")
async def list_networks(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"networks": [n.to_public() for n in control.network.list_networks(principal)]}


@router.get("/v1/networks/{name}")
async def get_network(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.network.get_network(principal, name).to_public()


@router.delete("/v1/networks/{name}", status_code=204)
async def delete_network(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    control.network.delete_network(principal, name, DOOR)
    return Response(status_code=204)


@router.post("/v1/networks/{name}/shells")
async def attach_shell(
    control: ControlDep, principal: PrincipalDep, name: str, body: BodyDep
) -> dict[str, Any]:
    """``{"shell_id": "sh_…"}``: the shell joins at once if it runs, at its next start otherwise."""
    shell_id = body.get("shell_id")
    if not isinstance(shell_id, str) or set(body) != {"shell_id"}:
        raise InvalidRequest('The body must be {"shell_id": "sh_…"}.', {"field": "shell_id"})
    return (await control.network.attach(principal, name, shell_id, DOOR)).to_public()


@router.delete("/v1/networks/{name}/shells/{shell_id}", status_code=204)
async def detach_shell(control: ControlDep, principal: PrincipalDep, name: str, shell_id: str) -> Response:
    await control.network.detach(principal, name, shell_id, DOOR)
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/ports", status_code=201)
async def expose_port(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: BodyDep
) -> dict[str, Any]:
    """``{"port": 8000, "public": false}`` → the URL and, unless public, its access token (shown once)."""
    return control.network.expose(principal, shell_id, body, DOOR)


@router.get("/v1/shells/{shell_id}/ports")
async def list_ports(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return {"ports": control.network.ports(principal, shell_id)}


@router.delete("/v1/shells/{shell_id}/ports/{port}", status_code=204)
async def close_port(
    control: ControlDep, principal: PrincipalDep, shell_id: str, port: Annotated[int, Path(ge=1, le=65535)]
) -> Response:
    control.network.close_port(principal, shell_id, port, DOOR)
    return Response(status_code=204)
