"""A handle on one shell: its record, its commands, files and ports, and its lifecycle."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Unpack

from ...domain.errors import ShellNotFound
from ..models import (
    CommandResponse,
    CommandResult,
    Event,
    MetricSample,
    NetworkStatus,
    Port,
    ShellInfo,
    Snapshot,
    SyncStatus,
    TermCredential,
    from_wire,
)
from ..wire import CreateOptions, Json
from .commands import AsyncCommands, OutputCallback, run_to_end
from .files import AsyncFiles
from .http import AsyncHTTP
from .processes import AsyncProcesses
from .tenancy import AsyncGrants, AsyncTerminals

if TYPE_CHECKING:
    from .client import AsyncShells


class AsyncShell:
    """One shell. Get it from ``client.create()``, ``client.get(id)`` or ``client.list()``.

    ``async with`` deletes the shell when the block ends. ``info`` is the record as last seen;
    actions update it and :meth:`refresh` reloads it.
    """

    def __init__(self, http: AsyncHTTP, info: ShellInfo) -> None:
        self._http = http
        self._owner: AsyncShells | None = None  # the client Shell.create made for this shell alone
        self._path = f"/v1/shells/{info.id}"
        self.info = info
        self.commands = AsyncCommands(http, info.id)
        self.processes = AsyncProcesses(http, info.id)
        self.files = AsyncFiles(http, info.id)
        self.ports = AsyncPorts(http, info.id)
        self.grants = AsyncGrants(http, info.id)
        self.terminals = AsyncTerminals(http, info.id)

    @property
    def id(self) -> str:
        return self.info.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.info.state}>"

    @classmethod
    async def create(
        cls,
        language: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        **options: Unpack[CreateOptions],
    ) -> AsyncShell:
        """Create a shell with a client of its own (``SHELLS_BASE_URL`` / ``SHELLS_API_TOKEN`` unless
        given), closed when the shell is killed. Options as for ``AsyncShells.create``.

        Raises:
            The errors of ``AsyncShells.create``.
        """
        from .client import AsyncShells

        client = AsyncShells(base_url, token)
        try:
            shell = await client.create(language, **options)
        except BaseException:
            await client.aclose()
            raise
        shell._owner = client
        return shell

    async def __aenter__(self) -> AsyncShell:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.kill()

    async def refresh(self) -> ShellInfo:
        """Reload the shell's record into ``info`` and return it.

        Raises:
            ShellNotFound: the shell no longer exists.
        """
        self.info = ShellInfo.parse(await self._http.call("GET", self._path))
        return self.info

    async def set_timeout(self, timeout_s: int, *, extend_only: bool = False) -> ShellInfo:
        """End the shell ``timeout_s`` seconds from now (0: at once), as its ``on_timeout`` says
        (``kill`` deletes it, ``pause`` pauses or stops it); ``extend_only`` keeps a later end.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidRequest: a negative or too long timeout.
        """
        body = {"timeout_s": timeout_s, "extend_only": extend_only}
        self.info = ShellInfo.parse(await self._http.call("POST", self._path + "/timeout", body=body))
        return self.info

    async def recover(self) -> ShellInfo:
        """Start a ``lost`` shell (its node is gone) again on another node, from the newer of its
        saved state and its newest durable snapshot in the object store. It comes back ``paused``
        or ``stopped`` (``state_reason`` says from what); resume or start it next.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: it is not lost, or nothing of it is in the object store.
        """
        answer = await self._http.call("POST", self._path + "/recover", unbounded=True)  # a fetch
        self.info = ShellInfo.parse(answer)
        return self.info

    async def kill(self) -> bool:
        """Delete the shell and everything in it (its snapshots stay). Returns ``False`` if it was
        already gone."""
        try:
            await self._http.call("DELETE", self._path)
        except ShellNotFound:
            return False
        finally:
            if self._owner is not None:
                await self._owner.aclose()
        return True

    destroy = kill
    """The CreateOS SDK's name for :meth:`kill`."""

    # lifecycle ------------------------------------------------------------------------------------
    async def _act(self, action: str, **params: Any) -> Json:
        answer = await self._http.call("POST", f"{self._path}/actions/{action}", body=params)
        self.info = ShellInfo.parse(answer["shell"])
        return dict(answer["result"])

    async def restart(self) -> None:
        """Stop and start the shell: processes end, files stay.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("restart")

    async def stop(self) -> None:
        """Stop every process; the filesystem stays until :meth:`start`.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("stop")

    async def start(self) -> None:
        """Start a stopped shell.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("start")

    async def reinstall_os(self) -> None:
        """Put the template's system back; ``/workspace`` stays.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("reinstall_os")

    async def wipe_state(self) -> None:
        """Put the template's system back and empty ``/workspace``.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("wipe_state")

    async def pause(self) -> None:
        """Freeze the shell with its memory, to :meth:`resume` later.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("pause")

    async def resume(self) -> None:
        """Continue a paused shell where it stopped.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        await self._act("resume")

    async def fork(self, n: int = 1) -> builtins.list[AsyncShell]:
        """Make ``n`` running copies of the shell, memory included, and return them.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        result = await self._act("fork", count=n)
        return [AsyncShell(self._http, ShellInfo.parse(s)) for s in result.get("shells", ())]

    async def snapshot(self, name: str | None = None) -> Snapshot:
        """Save the filesystem; ``client.create(snapshot=snap.id)`` makes a new shell from it.

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        result = await self._act("snapshot", **({"name": name} if name else {}))
        return from_wire(Snapshot, result["snapshot"])

    async def logs(self, max_bytes: int | None = None) -> str:
        """The end of the shell's console log (at most 256 KiB).

        Raises:
            ShellNotFound: the shell no longer exists.
            InvalidState: the shell's state does not allow it (the message says which states do).
            ActionNotSupported: this kind of shell cannot do it (containers cannot pause or fork).
        """
        result = await self._act("logs", **({"max_bytes": max_bytes} if max_bytes else {}))
        return str(result["logs"])

    # inside ---------------------------------------------------------------------------------------
    async def run_code(
        self,
        code: str,
        language: str | None = None,
        *,
        timeout: float | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a piece of code with the language's interpreter (or compiler, then the program).
        ``language`` defaults to the shell's.

        Raises:
            InvalidRequest: the shell cannot run that language.
            InvalidState: the shell is not running.
            Unavailable: the connection failed; the code is never sent twice.
        """
        body: Json = {"code": code}
        if language is not None:
            body["language"] = language
        if timeout is not None:
            body["timeout_s"] = timeout
        return await run_to_end(self._http, f"{self._path}/run", body, on_stdout, on_stderr)

    async def run_command(
        self,
        command: str,
        args: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
    ) -> CommandResponse:
        """CreateOS-style: run ``command`` with ``args`` (no shell) and return ``response.result``.

        Raises:
            The errors of ``commands.run``.
        """
        result = await self.commands.run(command, list(args or ()), env=env, cwd=cwd, timeout=timeout)
        return CommandResponse(result=result)

    # around ---------------------------------------------------------------------------------------
    async def events(self, after: int = 0) -> builtins.list[Event]:
        """The shell's activity (who changed it or ran what in it, through which door), oldest first,
        after event id ``after``.

        Raises:
            ShellNotFound: the shell no longer exists.
        """
        answer = await self._http.call("GET", f"{self._path}/events", params={"after": after})
        return [from_wire(Event, e) for e in answer["events"]]

    async def sync_status(self) -> SyncStatus:
        """How far the mirror of /workspace to the bucket given at create (``sync``) is.

        Raises:
            ShellNotFound: the shell no longer exists.
        """
        return from_wire(SyncStatus, await self._http.call("GET", f"{self._path}/sync"))

    async def metrics(
        self, start: float | datetime | None = None, end: float | datetime | None = None
    ) -> builtins.list[MetricSample]:
        """The shell's CPU, memory and disk samples from ``start`` to ``end`` (Unix seconds or aware
        datetimes; both optional), oldest first, taken every few seconds on the host.

        Raises:
            ShellNotFound: the shell no longer exists.
        """
        params = {
            k: str(v.timestamp() if isinstance(v, datetime) else v)
            for k, v in (("start", start), ("end", end))
            if v is not None
        }
        answer = await self._http.call("GET", f"{self._path}/metrics", params=params)
        return [from_wire(MetricSample, s) for s in answer["samples"]]

    async def term(self, ttl_s: int | None = None) -> TermCredential:
        """A short-lived credential for the shell's terminal: ``terminals.create(ttl_s)``.

        Raises:
            The errors of ``terminals.create``.
        """
        return await self.terminals.create(ttl_s)

    async def network(self) -> NetworkStatus:
        """The shell's network policy, private networks, addresses and blocked connections.

        Raises:
            ShellNotFound: the shell no longer exists.
        """
        return NetworkStatus.parse(await self._http.call("GET", f"{self._path}/network"))

    async def set_network(self, mode: str, allow: Sequence[str] | None = None) -> NetworkStatus:
        """Change the network policy of the running shell at once.

        Raises:
            InvalidRequest: an unknown mode, or ``allow`` without ``internet``.
            FeatureUnavailable: this host cannot give the shell that mode.
        """
        body: Json = {"mode": mode, "allow": list(allow or ())}
        return NetworkStatus.parse(await self._http.call("PUT", f"{self._path}/network", body=body))


class AsyncPorts:
    """Ports of one shell reachable from outside: ``shell.ports.expose(8000)``."""

    def __init__(self, http: AsyncHTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/ports"

    async def expose(self, port: int, *, public: bool = False) -> Port:
        """Make ``port`` reachable at ``result.url``; without ``public`` a caller needs ``result.token``.

        Raises:
            InvalidRequest: not a port number from 1 to 65535.
            InvalidState: the shell is not running.
        """
        return from_wire(
            Port, await self._http.call("POST", self._path, body={"port": port, "public": public})
        )

    async def list(self) -> builtins.list[Port]:
        """The exposed ports."""
        answer = await self._http.call("GET", self._path)
        return [from_wire(Port, p) for p in answer["ports"]]

    async def close(self, port: int) -> None:
        """Stop exposing ``port``.

        Raises:
            NotFound: the port is not exposed.
        """
        await self._http.call("DELETE", f"{self._path}/{port}")
