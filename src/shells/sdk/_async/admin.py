"""The instance itself, for platform admins (``client.admin``): its nodes."""

from __future__ import annotations

import builtins

from ..models import NodeInfo, from_wire
from .http import AsyncHTTP


class AsyncAdmin:
    """What only a platform admin (the bootstrap admin token) reads about the instance."""

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def nodes(self) -> builtins.list[NodeInfo]:
        """Every node: its region, zone, isolation classes, microvm acceleration, load (shells
        placed, free CPU, memory and disk) and state (``ready`` or ``gone``, and ``cordoned``).

        Raises:
            PermissionDenied: the token is not the platform admin's.
        """
        answer = await self._http.call("GET", "/v1/admin/nodes")
        return [from_wire(NodeInfo, n) for n in answer["nodes"]]
