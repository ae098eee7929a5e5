"""Run a code snippet in a shell with its language's interpreter or compiler.

The snippet goes to the shell on stdin of one exec (``domain.run_recipes.run_code_argv``), which writes
it into a fresh temp dir, runs it (python3, node, bash, ``go run``, or rustc then the binary) and
removes the dir. So a run is an exec in every respect: the same checks, streaming, timeout and audit
event (action ``run``), and a compiler error is output plus a non-zero exit code, not an API error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import access
from ..domain.errors import InvalidRequest
from ..domain.execution import DEFAULT_EXEC_TIMEOUT_S, ExecEvent, ExecSpec
from ..domain.isolation import Language, parse_enum
from ..domain.principal import Principal
from .auth import authorize
from .context import ControlContext
from .inside import Inside
from .wasm_shells import run_argv


@dataclass(frozen=True)
class RunRequest:
    """``{"code": "...", "language"?: "python", "timeout_s"?: 30}``."""

    code: str
    language: Language | None = None
    timeout_s: float = DEFAULT_EXEC_TIMEOUT_S

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RunRequest:
        known = {"code", "language", "timeout_s"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidRequest(
                f"Unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}.",
                {"fields": unknown},
            )
        code = body.get("code")
        if not isinstance(code, str) or not code.strip():
            raise InvalidRequest("'code' must be the non-empty source text to run.", {"field": "code"})
        language = body.get("language")
        timeout = body.get("timeout_s", DEFAULT_EXEC_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise InvalidRequest("'timeout_s' must be a number of seconds.", {"field": "timeout_s"})
        return cls(
            code=code,
            language=None if language is None else parse_enum(Language, language, "language"),
            timeout_s=float(timeout),
        )


class RunCode:
    def __init__(self, ctx: ControlContext, inside: Inside) -> None:
        self.ctx = ctx
        self.inside = inside

    async def run(
        self, principal: Principal, shell_id: str, req: RunRequest, door: str
    ) -> AsyncIterator[ExecEvent]:
        """Like ``Inside.exec``: checks happen before the caller's first await; the language defaults
        to the shell's own."""
        shell = authorize(self.ctx.store, principal, shell_id, access.EXEC)
        language = req.language or shell.language
        argv = run_argv(shell.runtime, language)
        spec = ExecSpec(argv=argv, stdin=req.code.encode(), timeout_s=req.timeout_s)
        return await self.inside.exec(principal, shell_id, spec, door, action=f"run {language}")
