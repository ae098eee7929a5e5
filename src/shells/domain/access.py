"""Entitlements (scopes on a token) and roles (a principal's standing on one shell): the rules only.

Two questions decide every shell operation, in this order:

1. Does the *token* carry the operation's scope? (``shells.exec`` …) — otherwise 403.
2. What is the *principal's* role on the shell? Owner (the creator; tenant admins count as owners of
   every shell of their tenant), ``operator`` or ``viewer`` (granted), or none. None is answered
   exactly like a shell that does not exist (404); a role below the operation's is a 403.

``Permission`` names each operation once, with its scope and the least role it needs, so the check
itself (``control.auth.authorize``) is one function that every door reaches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import InvalidRequest
from .principal import ADMIN_SCOPES, Scope

PLATFORM_ADMIN = Scope.PLATFORM_ADMIN
TENANT_ADMIN = Scope.TENANT_ADMIN
AGENT_INVOKE = Scope.AGENT_INVOKE
"""Needed for any call through the MCP door, on top of the tool's own permission (see docs/security.md)."""

KNOWN_SCOPES: frozenset[str] = ADMIN_SCOPES


class Role(IntEnum):
    """A principal's standing on one shell; a higher role includes everything a lower one may do."""

    VIEWER = 1
    OPERATOR = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


GRANTABLE: dict[str, Role] = {"viewer": Role.VIEWER, "operator": Role.OPERATOR}


@dataclass(frozen=True)
class Permission:
    """One kind of operation on a shell: the scope its token needs and the least role it needs."""

    name: str
    scope: Scope
    role: Role


READ = Permission("read", Scope.READ, Role.VIEWER)
FILES_READ = Permission("files.read", Scope.FILES, Role.VIEWER)
FILES_WRITE = Permission("files.write", Scope.FILES, Role.OPERATOR)
EXEC = Permission("exec", Scope.EXEC, Role.OPERATOR)
ACT = Permission("act", Scope.ACT, Role.OPERATOR)
TERM = Permission("term", Scope.TERM, Role.OPERATOR)
DESTROY = Permission("destroy", Scope.DESTROY, Role.OWNER)
SHARE = Permission("share", Scope.ACT, Role.OWNER)
"""Granting and revoking roles on a shell: owners and tenant admins only."""
NETWORK = Permission("network", Scope.ACT, Role.OPERATOR)
"""Changing a shell's network: its policy, its private networks, its exposed ports."""
SAVE = Permission("save", Scope.CREATE, Role.OPERATOR)
"""Saving a shell as a template, which every principal of the tenant may then use."""


def parse_scopes(value: object, field: str = "scopes") -> frozenset[str]:
    """A list of known scope names, or InvalidRequest naming the unknown ones and the known ones."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest(f"'{field}' must be a list of scope names.", {"field": field})
    unknown = sorted(set(value) - KNOWN_SCOPES)
    if unknown:
        raise InvalidRequest(
            f"Unknown scope(s) {', '.join(unknown)}. Known scopes: {', '.join(sorted(KNOWN_SCOPES))}.",
            {"field": field, "unknown": unknown},
        )
    return frozenset(value)


def parse_role(value: object) -> Role:
    if not isinstance(value, str) or value not in GRANTABLE:
        raise InvalidRequest(
            f"'role' must be one of: {', '.join(GRANTABLE)} (owners are the creators).", {"field": "role"}
        )
    return GRANTABLE[value]
