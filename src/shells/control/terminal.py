"""Terminal credentials and live terminal sessions.

A credential (``POST /v1/shells/{id}/term``) is a secret bound to one shell and one principal, minted
through one API token, living 5 minutes by default and 15 at most. It is shown once and stored as a
hash; listings show it masked (``term_…a1b2``). Attaching checks, in order: the secret (unknown, or
for another shell: 401, the same answer), its revocation and expiry (401), the API token that minted it
(revoked or expired: 401), the principal's right to a terminal on the shell now (404/403), that the
shell runs (409), and that no other session holds it (409: one session at a time).

A session is an interactive process on a pseudo-terminal in the shell, through the guest agent. It
ends when the process exits, when the client leaves, or when the credential expires or is revoked —
a timer ends it at the expiry instant, mid-session, with ``credential_expired``. The credential never
enters the shell: nothing long-lived is there to steal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from ..domain import access
from ..domain.access import Role
from ..domain.audit import DEFAULT_DOOR
from ..domain.errors import (
    CredentialExpired,
    CredentialInUse,
    CredentialNotFound,
    CredentialRevoked,
    InvalidRequest,
    ShellsError,
    Unauthenticated,
)
from ..domain.execution import ExecExit
from ..domain.ids import new_id
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.tenancy import TermCredentialRecord
from ..domain.terminal import TerminalIO, TerminalSpec, check_window
from .auth import authorize, check_alive, hash_token, mint_secret, role_on
from .context import ControlContext
from .request_scope import note_principal
from .requests import reject_unknown
from .suspend import Suspension
from .templates import Templates
from .wasm_shells import refuse_terminal

TERM_PREFIX = "term_"
DEFAULT_TTL_S = 300
MAX_TTL_S = 900
BACKSTOP_MARGIN_S = 60.0
"""The agent kills the process this long after the credential's expiry, should the host not have."""


def parse_ttl(body: Mapping[str, Any]) -> int:
    reject_unknown(body, {"ttl_s"})
    ttl = body.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_S:
        raise InvalidRequest(
            f"'ttl_s' must be a whole number of seconds from 1 to {MAX_TTL_S} (default {DEFAULT_TTL_S}).",
            {"field": "ttl_s"},
        )
    return ttl


class Terminals:
    def __init__(self, ctx: ControlContext, templates: Templates, suspension: Suspension) -> None:
        self.ctx = ctx
        self.templates = templates
        self.suspension = suspension
        self._live: dict[str, TerminalSession] = {}

    # credentials ----------------------------------------------------------------------------------
    def mint(
        self, principal: Principal, shell_id: str, body: Mapping[str, Any]
    ) -> tuple[TermCredentialRecord, str]:
        """A new credential for the caller on this shell, and its secret (shown only now)."""
        ttl = parse_ttl(body)
        shell = self.suspension.usable(principal, shell_id, access.TERM)
        refuse_terminal(shell.runtime)
        secret = mint_secret(TERM_PREFIX)
        now = datetime.now(UTC)
        cred = TermCredentialRecord(
            id=new_id("tc"),
            tenant=shell.tenant,
            shell_id=shell.id,
            principal=principal.id,
            token_id=principal.token_id or "",
            suffix=secret.token[-4:],
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        draft = self.ctx.draft(
            principal,
            shell,
            kind="term",
            action="term.mint",
            details={"credential": cred.id, "ttl_s": ttl},
        )
        self.ctx.store.tenancy.add_term_credential(cred, secret.hash, draft)
        return cred, secret.token

    def credentials(self, principal: Principal, shell_id: str) -> list[tuple[TermCredentialRecord, bool]]:
        """Credentials of this shell (owners and tenant admins see everyone's), and whether in use."""
        shell = authorize(self.ctx.store, principal, shell_id, access.TERM)
        everyone = role_on(self.ctx.store, principal, shell) is Role.OWNER
        return [
            (cred, cred.id in self._live)
            for cred in self.ctx.store.tenancy.list_term_credentials(shell.id)
            if everyone or cred.principal == principal.id
        ]

    def revoke(self, principal: Principal, shell_id: str, credential_id: str) -> None:
        """Revoke a credential; a session attached with it ends at once."""
        shell = authorize(self.ctx.store, principal, shell_id, access.TERM)
        cred = self.ctx.store.tenancy.get_term_credential(credential_id)
        if (
            cred is None
            or cred.shell_id != shell.id
            or (
                cred.principal != principal.id and role_on(self.ctx.store, principal, shell) is not Role.OWNER
            )
        ):
            raise CredentialNotFound(
                f"Terminal credential '{credential_id}' does not exist.", {"id": credential_id}
            )
        draft = self.ctx.draft(
            principal, shell, kind="term", action="term.revoke", details={"credential": cred.id}
        )
        self.ctx.store.tenancy.revoke_term_credential(cred.id, draft)
        self.end_sessions([cred.id], "The terminal credential was revoked.")

    def end_sessions(self, credential_ids: list[str], message: str) -> None:
        for credential_id in credential_ids:
            session = self._live.get(credential_id)
            if session is not None:
                session.end(CredentialRevoked(message))

    # sessions -------------------------------------------------------------------------------------
    def attach(self, token: str, shell_id: str, cols: int, rows: int) -> TerminalSession:
        """Check a credential for this shell; enter the returned session to start the terminal."""
        now = datetime.now(UTC)
        cred = self.ctx.store.tenancy.find_term_credential(hash_token(token))
        if cred is None or cred.shell_id != shell_id:
            raise Unauthenticated(
                "This terminal credential is not known for this shell; mint one with "
                f"POST /v1/shells/{shell_id}/term."
            )
        if cred.revoked_at is not None:
            raise CredentialRevoked("This terminal credential was revoked; mint a new one.")
        if cred.expires_at <= now:
            raise CredentialExpired(f"This terminal credential expired at {cred.expires_at.isoformat()}.")
        api_token = self.ctx.store.tenancy.get_token(cred.token_id)
        try:
            api_token = check_alive(api_token, now)
        except Unauthenticated:
            raise CredentialRevoked(
                "The API token that minted this terminal credential was revoked or expired."
            ) from None
        principal = Principal(cred.principal, cred.tenant, api_token.scopes, api_token.id)
        note_principal(principal)
        shell = self.suspension.usable(principal, shell_id, access.TERM)
        remaining = (cred.expires_at - now).total_seconds()
        env, workdir = self.templates.exec_defaults(shell.template)  # what an exec there would get
        spec = TerminalSpec(
            env={**env, **shell.env},
            cwd=workdir,
            cols=cols,
            rows=rows,
            timeout_s=remaining + BACKSTOP_MARGIN_S,
            user=self.templates.exec_user(shell.template),
        )
        return TerminalSession(self, cred, principal, shell, spec)


class TerminalSession:
    """One attached terminal. ``read`` returns output bytes, then the process's ExecExit; it raises
    the credential's error (expired, revoked) the moment the session is ended from outside."""

    def __init__(
        self,
        terminals: Terminals,
        cred: TermCredentialRecord,
        principal: Principal,
        shell: ShellRecord,
        spec: TerminalSpec,
    ) -> None:
        self._terminals = terminals
        self.credential = cred
        self.principal = principal
        self.shell = shell
        self._spec = spec
        self._ended: asyncio.Future[ShellsError] = asyncio.get_running_loop().create_future()
        self._context: AbstractAsyncContextManager[TerminalIO] | None = None
        self._io: TerminalIO | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_use = False
        self._started = 0.0
        self.outcome = "ok"
        self.ended_by = "client"
        self.exit_code: int | None = None

    @property
    def expires_at(self) -> datetime:
        return self.credential.expires_at

    async def __aenter__(self) -> TerminalSession:
        live = self._terminals._live
        if self.credential.id in live:
            raise CredentialInUse(
                "This terminal credential is attached in another session; a credential serves one "
                "session at a time."
            )
        live[self.credential.id] = self  # before the first await: a parallel attach sees it
        suspension = self._terminals.suspension
        try:
            self.shell = await suspension.ready(
                self.principal, self.shell.id, access.TERM, DEFAULT_DOOR, "a terminal"
            )
            backend = self._terminals.ctx.backend(self.shell.runtime)
            self._context = backend.terminal(self.shell.id, self._spec)
            self._io = await self._context.__aenter__()
        except BaseException:
            del live[self.credential.id]
            raise
        suspension.begin_use(self.shell.id)
        self._in_use = True
        self._started = time.monotonic()
        delay = (self.credential.expires_at - datetime.now(UTC)).total_seconds()
        expired = CredentialExpired(
            f"The terminal credential expired at {self.credential.expires_at.isoformat()}; mint a new "
            f"one with POST /v1/shells/{self.shell.id}/term."
        )
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self.end, expired)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if isinstance(error, ShellsError) and self.outcome == "ok":
            self.outcome = error.code
        try:
            if self._context is not None:
                await self._context.__aexit__(None, None, None)  # closes the channel: the process is killed
        finally:
            self._terminals._live.pop(self.credential.id, None)
            if self._in_use:
                self._terminals.suspension.end_use(self.shell.id)
            self._record()

    def _record(self) -> None:
        ctx = self._terminals.ctx
        details: dict[str, Any] = {
            "credential": self.credential.id,
            "ended_by": self.ended_by,
            "duration_s": round(time.monotonic() - self._started, 3),
        }
        if self.exit_code is not None:
            details["exit_code"] = self.exit_code
        ctx.store.add_event(
            ctx.draft(
                self.principal,
                self.shell,
                kind="term",
                action="term.session",
                outcome=self.outcome,
                details=details,
            )
        )

    def end(self, error: ShellsError) -> None:
        """End the session from outside (expiry timer, revocation): the next or pending read raises."""
        if not self._ended.done():
            self.ended_by = "expired" if isinstance(error, CredentialExpired) else "revoked"
            self.outcome = error.code
            self._ended.set_result(error)

    def _check(self) -> TerminalIO:
        if self._ended.done():
            raise self._ended.result()
        assert self._io is not None, "enter the session first"
        return self._io

    async def read(self) -> bytes | ExecExit:
        reader = asyncio.ensure_future(self._check().read())
        waiters: list[asyncio.Future[Any]] = [reader, self._ended]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if self._ended.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            raise self._ended.result()
        item = reader.result()
        if isinstance(item, ExecExit):
            self.ended_by, self.exit_code = "exit", item.exit_code
        return item

    async def write(self, data: bytes) -> None:
        await self._check().write(data)

    async def resize(self, cols: object, rows: object) -> None:
        await self._check().resize(*check_window(cols, rows))
