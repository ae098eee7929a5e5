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

COMPILE_PROGRAM = "shells-compile"
"""``[COMPILE_PROGRAM, "rust"|"go"]`` with the source on stdin: compile it to WASI in a container
shell (template ``BUILD_TEMPLATE``), then run the module here. What ``run`` uses for rust and go."""
BUILD_TEMPLATE = "wasm-build:1"
COMPILED: dict[str, Language] = {"rust": Language.RUST, "go": Language.GO}

LANGUAGES = frozenset({Language.PYTHON, Language.NODE, Language.RUST, Language.GO})
"""Languages whose snippets run in a wasm shell."""

NO_SHELL = (
    "bash and sh are not available in wasm shells: there is no POSIX shell for WASI preview 1 "
    "(which cannot start processes). Run python or node (QuickJS) here, or create a 'container' "
    "or 'microvm' shell for bash."
)

RUN_ARGV: dict[Language, tuple[str, ...]] = {
    Language.PYTHON: ("python", "-"),
    Language.NODE: ("qjs", "--std", "-e", "std.evalScript(std.in.readAsString())"),
    Language.RUST: (COMPILE_PROGRAM, "rust"),
    Language.GO: (COMPILE_PROGRAM, "go"),
}
"""How ``run`` runs a snippet given on stdin (never in argv, so no quoting can break it)."""


def check_language(language: Language) -> None:
    """Raise FeatureUnavailable (naming where it runs) for a language wasm shells do not offer."""
    if language not in LANGUAGES:
        raise FeatureUnavailable(NO_SHELL, {"field": "language", "runtimes": ["container", "microvm"]})


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


COMPILED_NOTES = {
    Language.RUST: "Debian's rustc for wasm32-wasip1: std only (no crates), no threads, network or processes",
    Language.GO: "Go for GOOS=wasip1: standard library only, one OS thread, no network or os/exec",
}


def wasm_offers(build_versions: dict[str, str] | None) -> list[RuntimeOffer]:
    """The wasm class's row of the runtime matrix, told as it is. ``build_versions`` are the
    versions of the ``BUILD_TEMPLATE`` template when it is ready on this host, else None."""
    offers = {
        Language.PYTHON: RuntimeOffer(Language.PYTHON, True, PYTHON_VERSION, PYTHON_NOTES),
        Language.NODE: RuntimeOffer(Language.NODE, True, f"QuickJS-NG {QUICKJS_VERSION}", NODE_NOTES),
        Language.BASH: RuntimeOffer(Language.BASH, False, "", NO_SHELL),
    }
    for language, key in ((Language.RUST, "rustc"), (Language.GO, "go")):
        how = f"run only: compiled in a throwaway container shell (template {BUILD_TEMPLATE}), then run here"
        if build_versions is None:
            offers[language] = RuntimeOffer(
                language,
                False,
                "",
                f"needs template {BUILD_TEMPLATE}, not built on this server yet: POST /v1/templates/build "
                f'{{"builtin": "{BUILD_TEMPLATE}"}}; then {how}',
            )
        else:
            notes = f"{how}. {COMPILED_NOTES[language]}"
            offers[language] = RuntimeOffer(language, True, build_versions.get(key, ""), notes)
    return [offers[language] for language in Language]
