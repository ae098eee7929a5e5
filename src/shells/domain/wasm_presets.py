"""What a wasm shell can run: its preset programs, how ``run`` runs a snippet, what it lacks.

A wasm shell has no operating system: an exec's ``argv[0]`` names one of the programs below or a
``.wasm`` file under /workspace (a WASI preview 1 command module), and nothing else exists.
"""

from __future__ import annotations

from .errors import CommandNotFound, FeatureUnavailable
from .isolation import Language
from .runtimes import RuntimeOffer

PYTHON_VERSION = "3.12.0"
QUICKJS_VERSION = "0.11.0"

WASM_TEMPLATE = "wasm:1"
"""The template name recorded on every wasm shell: the class has no root filesystems to choose from,
only the pinned interpreters (docs/wasm.md), so there is one."""

PROGRAMS: dict[str, str] = {"python": "python", "python3": "python", "node": "qjs", "qjs": "qjs"}
"""``argv[0]`` → the interpreter (artifact name) that runs it."""

LANGUAGES: dict[Language, str] = {Language.PYTHON: "python", Language.NODE: "qjs"}
"""Languages whose snippets run in a wasm shell, and their interpreter."""

NO_SHELL = (
    "bash and sh are not available in wasm shells: there is no POSIX shell for WASI preview 1 "
    "(which cannot start processes). Run python or node (QuickJS) here, or create a 'container' "
    "or 'microvm' shell for bash."
)
NOT_COMPILED_HERE = (
    "{language} programs do not run in wasm shells on this host yet: compile them to wasm32-wasip1 "
    "in a 'container' shell and run the .wasm file here, or create a 'container' or 'microvm' shell."
)

RUN_ARGV: dict[Language, tuple[str, ...]] = {
    Language.PYTHON: ("python", "-"),
    Language.NODE: ("qjs", "--std", "-e", "std.evalScript(std.in.readAsString())"),
}
"""How ``run`` runs a snippet given on stdin (never in argv, so no quoting can break it)."""


def check_language(language: Language) -> None:
    """Raise FeatureUnavailable (naming where it runs) for a language wasm shells do not offer."""
    if language in LANGUAGES:
        return
    if language is Language.BASH:
        raise FeatureUnavailable(NO_SHELL, {"field": "language", "runtimes": ["container", "microvm"]})
    raise FeatureUnavailable(
        NOT_COMPILED_HERE.format(language=language.value),
        {"field": "language", "runtimes": ["container", "microvm"]},
    )


def program_for(argv0: str) -> str | None:
    """The interpreter for ``argv0``, or None when ``argv0`` names a .wasm file; else CommandNotFound."""
    if argv0 in PROGRAMS:
        return PROGRAMS[argv0]
    if argv0.endswith(".wasm"):
        return None
    if argv0.rsplit("/", 1)[-1] in ("sh", "bash", "dash", "zsh"):
        raise CommandNotFound(NO_SHELL, {"program": argv0})
    offered = ", ".join(sorted(PROGRAMS))
    raise CommandNotFound(
        f"{argv0}: not found in this wasm shell. It runs {offered} (node is QuickJS, not Node.js) "
        "or a WASI command module: a path to a .wasm file under /workspace.",
        {"program": argv0, "available": sorted(PROGRAMS)},
    )


PYTHON_NOTES = (
    "CPython for WASI (WebAssembly Language Runtimes build, -O0: CPU-bound code runs several times "
    "slower than native). The standard library is there except ssl, ctypes, lzma, multiprocessing; "
    "no threads, subprocesses, sockets or pip installs of C extensions."
)
NODE_NOTES = (
    "JavaScript via QuickJS-NG, not Node.js: no require/process/npm/Buffer; ES2023 with the "
    "qjs:std and qjs:os modules. No network, no subprocesses."
)


def wasm_offers() -> list[RuntimeOffer]:
    """The wasm class's row of the runtime matrix, told as it is."""
    offers = {
        Language.PYTHON: RuntimeOffer(Language.PYTHON, True, PYTHON_VERSION, PYTHON_NOTES),
        Language.NODE: RuntimeOffer(Language.NODE, True, f"QuickJS-NG {QUICKJS_VERSION}", NODE_NOTES),
        Language.BASH: RuntimeOffer(Language.BASH, False, "", NO_SHELL),
    }
    for language in (Language.RUST, Language.GO):
        offers[language] = RuntimeOffer(
            language, False, "", NOT_COMPILED_HERE.format(language=language.value)
        )
    return [offers[language] for language in Language]
