"""The audit trail: every request that reads or changes anything leaves exactly one record (or more,
when a use case writes its own events, such as a create's ``create`` and ``running``).

The trail is the ``events`` table. Use cases that change something write their event in the same
transaction as the change; the door that received the request (``api.request_context``) calls
``Audit.finish`` afterwards, which writes one row only for requests nothing else recorded: reads, and
requests refused before any change (wrong scope, someone else's shell, bad input). So an exec costs
one insert, as before, and a refused probe is on the record too.

Who asks, through which door, under which request id is ambient per request (a context variable set
by the door), so the use cases need no extra parameters for it. Requests that never authenticate
(no token, an unknown one) or are rate limited write nothing: they name no tenant, and a database
write for each would let anyone fill the disk; they go to the server log instead.
"""

from __future__ import annotations

import logging

from ..domain.access import TENANT_ADMIN
from ..domain.audit import AuditQuery, RequestInfo
from ..domain.errors import RecordUnavailable
from ..domain.principal import Principal
from ..domain.shell import EventRecord
from ..store.repository import EventDraft, Store
from .auth import require

log = logging.getLogger(__name__)
MAX_AUDIT_PAGE = 5000


class Audit:
    def __init__(self, store: Store) -> None:
        self.store = store

    def finish(self, info: RequestInfo, *, action: str, target: str | None, read: bool, status: int) -> None:
        """Record a finished request unless it was recorded already or never authenticated."""
        outcome = info.outcome or ("ok" if status < 400 else f"http_{status}")
        if info.recorded:
            return
        if info.principal is None:
            if status >= 400:
                log.info("refused request %s %s: %s (%s)", info.request_id, action, outcome, info.door)
            return
        draft = EventDraft(
            tenant=info.principal.tenant,
            shell_id=None,
            principal=info.principal.id,
            door=info.door,
            kind="read" if read else "request",
            action=action,
            outcome=outcome,
            target=target,
            request=info,
        )
        try:
            self.store.add_event(draft)
        except RecordUnavailable:  # the answer is sent; the database restarts (docs/cluster.md)
            log.warning(
                "request %s %s (%s, %s) is not in the audit trail: the record's database did not answer",
                info.request_id, action, info.principal.id, outcome,
            )  # fmt: skip

    def search(
        self, principal: Principal, query: AuditQuery, after: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        """The caller's tenant's trail, oldest first; tenant admins only."""
        require(principal, TENANT_ADMIN)
        return self.store.list_events(
            tenant=principal.tenant,
            shell_id=None,
            after=after,
            limit=max(1, min(limit, MAX_AUDIT_PAGE)),
            query=query,
        )
