# Generated from src/shells/sdk/_async/admin.py by scripts/unasync.py; edit that file and run the script.
"""The instance itself, for platform admins (``client.admin``): its nodes."""

from __future__ import annotations

import builtins

from ..models import NodeInfo, from_wire
from .http import HTTP


class Admin:
    """What only a platform admin (the bootstrap admin token) reads about the instance."""

    def __init__(self, http: HTTP) -> None:
        self._http = http

    def nodes(self) -> builtins.list[NodeInfo]:
        """Every node: its region, zone, isolation classes, microvm acceleration, load (shells
        placed, free CPU, memory and disk) and state (``ready`` or ``gone``, and ``cordoned``).

        Raises:
            PermissionDenied: the token is not the platform admin's.
        """
        answer = self._http.call("GET", "/v1/admin/nodes")
        return [from_wire(NodeInfo, n) for n in answer["nodes"]]
