"""How a snippet of each language runs in a shell (``POST /v1/shells/{id}/run``, MCP's run tool): the
file it is written to and the command that runs it, as one bash script that takes the snippet on stdin."""

from __future__ import annotations

from dataclasses import dataclass

from .isolation import Language


@dataclass(frozen=True)
class RunRecipe:
    """How to run a snippet: the file it is written to and the command that runs ``$SRC``."""

    filename: str
    command: str


RUN_RECIPES: dict[Language, RunRecipe] = {
    Language.PYTHON: RunRecipe("main.py", 'python3 "$SRC"'),
    Language.NODE: RunRecipe("main.js", 'node "$SRC"'),
    Language.BASH: RunRecipe("main.sh", 'bash "$SRC"'),
    Language.GO: RunRecipe("main.go", 'go run "$SRC"'),
    Language.RUST: RunRecipe("main.rs", 'rustc --edition=2021 -o "$DIR/main" "$SRC" && "$DIR/main"'),
}


def run_code_argv(language: Language) -> tuple[str, ...]:
    """A bash script that reads the snippet from stdin into a fresh temp dir, runs it, and removes the
    dir. The snippet never appears in argv, so no quoting can break it."""
    recipe = RUN_RECIPES[language]
    script = (
        "DIR=$(mktemp -d /tmp/shells-run.XXXXXX) || exit 125\n"
        "trap 'rm -rf \"$DIR\"' EXIT\n"
        f'SRC="$DIR/{recipe.filename}"\n'
        'cat > "$SRC"\n'
        f"{recipe.command}\n"
    )
    return ("bash", "-c", script)
