"""What differs for wasm shells in the shared use cases: no templates, fewer languages, run argv."""

from __future__ import annotations

from ..domain.errors import ActionNotSupported, InvalidRequest
from ..domain.isolation import Language, Runtime
from ..domain.run_recipes import run_code_argv
from ..domain.wasm_presets import RUN_ARGV, WASM_TEMPLATE, check_language
from .requests import CreateShellRequest


def wasm_template(req: CreateShellRequest) -> str:
    """The template recorded on a new wasm shell, after refusing what the class cannot honour."""
    if req.template is not None:
        raise InvalidRequest(
            "wasm shells have no templates: leave out 'template' (they run the class's pinned "
            "interpreters), or create a 'container' shell.",
            {"field": "template"},
        )
    check_language(req.language)
    return WASM_TEMPLATE


def refuse_terminal(runtime: Runtime) -> None:
    """A wasm shell has no terminal (WASI has no TTY): say so before a credential is minted."""
    if runtime is Runtime.WASM:
        raise ActionNotSupported(
            "wasm shells have no terminal: WASI has no TTY or processes. Use exec, or a 'container' "
            "or 'microvm' shell for a terminal.",
            {"runtime": runtime.value},
        )


def run_argv(runtime: Runtime, language: Language) -> tuple[str, ...]:
    """How ``run`` runs a snippet (given on stdin) of ``language`` in a shell of ``runtime``."""
    if runtime is Runtime.WASM:
        check_language(language)
        return RUN_ARGV[language]
    return run_code_argv(language)
