"""REST v1 for networking: a shell's policy and blocked log, private networks, exposed ports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from ..control.bodies import AttachBody, NetworkBody, NetworkPolicyBody, PortBody
from .contract import AUTHED, BODY, INSIDE, BodyRoute, errors
from .deps import DOOR, ControlDep, PrincipalDep

router = APIRouter(route_class=BodyRoute)
SEALED = NetworkPolicyBody()
LIST = errors(*AUTHED)
ONE = errors(*AUTHED, 404)
CHANGE = errors(*AUTHED, *INSIDE)
WRITE = errors(*AUTHED, *BODY, *INSIDE)


@router.get("/v1/shells/{shell_id}/network", responses=ONE)
async def shell_network(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    """The policy, the private networks, the addresses and the blocked log (newest first)."""
    return control.network.describe(principal, shell_id)


@router.put("/v1/shells/{shell_id}/network", responses=WRITE)
async def set_shell_network(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: NetworkPolicyBody = SEALED
) -> dict[str, Any]:
    """``{"mode": "internet", "allow": [...]}``: applied to a running shell at once."""
    return await control.network.set_policy(principal, shell_id, body.wire(), DOOR)


@router.post("/v1/networks", status_code=201, responses=errors(*AUTHED, *BODY, 409))
async def create_network(control: ControlDep, principal: PrincipalDep, body: NetworkBody) -> dict[str, Any]:
    return control.network.create_network(principal, body.wire(), DOOR).to_public()


@router.get("/v1/networks", responses=LIST)
async def list_networks(control: ControlDep, principal: PrincipalDep) -> dict[str, Any]:
    return {"networks": [n.to_public() for n in control.network.list_networks(principal)]}


@router.get("/v1/networks/{name}", responses=ONE)
async def get_network(control: ControlDep, principal: PrincipalDep, name: str) -> dict[str, Any]:
    return control.network.get_network(principal, name).to_public()


@router.delete("/v1/networks/{name}", status_code=204, responses=errors(*AUTHED, 404, 409))
async def delete_network(control: ControlDep, principal: PrincipalDep, name: str) -> Response:
    control.network.delete_network(principal, name, DOOR)
    return Response(status_code=204)


@router.post("/v1/networks/{name}/shells", responses=WRITE)
async def attach_shell(
    control: ControlDep, principal: PrincipalDep, name: str, body: AttachBody
) -> dict[str, Any]:
    """``{"shell_id": "sh_…"}``: the shell joins at once if it runs, at its next start otherwise."""
    return (await control.network.attach(principal, name, body.shell_id, DOOR)).to_public()


@router.delete("/v1/networks/{name}/shells/{shell_id}", status_code=204, responses=CHANGE)
async def detach_shell(control: ControlDep, principal: PrincipalDep, name: str, shell_id: str) -> Response:
    await control.network.detach(principal, name, shell_id, DOOR)
    return Response(status_code=204)


@router.post("/v1/shells/{shell_id}/ports", status_code=201, responses=errors(*AUTHED, *BODY, 404, 409))
async def expose_port(
    control: ControlDep, principal: PrincipalDep, shell_id: str, body: PortBody
) -> dict[str, Any]:
    """``{"port": 8000, "public": false}`` → the URL and, unless public, its access token (shown once)."""
    return control.network.expose(principal, shell_id, body.wire(), DOOR)


@router.get("/v1/shells/{shell_id}/ports", responses=ONE)
async def list_ports(control: ControlDep, principal: PrincipalDep, shell_id: str) -> dict[str, Any]:
    return {"ports": control.network.ports(principal, shell_id)}


@router.delete("/v1/shells/{shell_id}/ports/{port}", status_code=204, responses=errors(*AUTHED, 404, 409))
async def close_port(
    control: ControlDep, principal: PrincipalDep, shell_id: str, port: Annotated[int, Path(ge=1, le=65535)]
) -> Response:
    control.network.close_port(principal, shell_id, port, DOOR)
    return Response(status_code=204)
