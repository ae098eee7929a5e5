# Generated from src/shells/sdk/_async/nodes.py by scripts/unasync.py; edit that file and run the script.
"""The instance's nodes, for platform admins (``client.nodes``): list them, drain one (no new shells
there, and its paused and stopped shells moved to other nodes through the object store) and
uncordon it."""

from __future__ import annotations

import builtins
from urllib.parse import quote

from ..models import NodeDrain, NodeInfo, from_wire
from .http import HTTP


class Nodes:
    def __init__(self, http: HTTP) -> None:
        self._http = http

    def list(self) -> builtins.list[NodeInfo]:
        """Every node: its region, zone, isolation classes, microvm acceleration, load (shells
        placed, free CPU, memory and disk) and state (``ready`` or ``gone``, and ``cordoned``).

        Raises:
            PermissionDenied: the token is not the platform admin's.
        """
        answer = self._http.call("GET", "/v1/admin/nodes")
        return [from_wire(NodeInfo, n) for n in answer["nodes"]]

    def drain(self, name: str) -> NodeDrain:
        """Cordon node ``name`` and move every paused and stopped shell off it; running shells stay
        and are listed in ``left`` with the reason.

        Raises:
            PermissionDenied: only a platform admin drains nodes.
            InvalidRequest: no node has that name.
        """
        path = f"/v1/admin/nodes/{quote(name, safe='')}/drain"  # as long as the moves take
        return from_wire(NodeDrain, self._http.call("POST", path, unbounded=True))

    def uncordon(self, name: str) -> bool:
        """Let new shells be placed on node ``name`` again; whether it was cordoned.

        Raises:
            PermissionDenied: only a platform admin uncordons nodes.
            InvalidRequest: no node has that name.
        """
        path = f"/v1/admin/nodes/{quote(name, safe='')}/uncordon"
        return bool((self._http.call("POST", path))["was_cordoned"])
