"""Generate the synchronous SDK, and its end-to-end tests, from the asynchronous source.

    python scripts/unasync.py           # rewrite the generated files
    python scripts/unasync.py --check   # list stale generated files and exit 1 if there are any

The sync and async clients must offer the same methods with the same docstrings and behaviour.
Writing the async code once and deriving the sync code by token substitution (as httpcore does)
keeps one source of truth, and the rules below are few enough to read at a glance. The output is
cleaned and formatted by ruff and checked in, so it can be read, type-checked and debugged like any
other module; a unit test fails when it is stale.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES: dict[str, str] = {
    "src/shells/sdk/_async": "src/shells/sdk/_sync",
    "tests/e2e/test_sdk_async.py": "tests/e2e/test_sdk_sync.py",
    "tests/e2e/test_sdk_secrets_async.py": "tests/e2e/test_sdk_secrets_sync.py",
    "tests/e2e/test_sdk_hooks_async.py": "tests/e2e/test_sdk_hooks_sync.py",
    "tests/e2e/test_sdk_storage_async.py": "tests/e2e/test_sdk_storage_sync.py",
}
"""Async source (a file, or every module but ``__init__.py`` of a package) → sync target."""

RULES: list[tuple[str, str]] = [
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__a(enter|exit|iter|next)__\b", r"__\1__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\ba(close|read|iter_bytes|iter_lines|iter_raw|iter_text|next|iter)\b", r"\1"),
    (r"\bhandle_async_request\b", "handle_request"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\bimport anyio\b", "import time"),
    (r"\banyio\.sleep\b", "time.sleep"),
    (r"\banyio\.open_file\b", "open"),
    (r"^.*\bpytest\.mark\.anyio\b.*\n", ""),
]
"""(pattern, replacement), applied in order, line by line (``^`` is a line start)."""
_COMPILED = [(re.compile(p, re.MULTILINE), r) for p, r in RULES]


def unasync_text(source: str) -> str:
    """The sync twin of async source text, before ruff cleans and formats it."""
    for pattern, replacement in _COMPILED:
        source = pattern.sub(replacement, source)
    return source


def _ruff(args: list[str], text: str, filename: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", filename, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {args[0]} failed on {filename}:\n{done.stderr}")
    return done.stdout


def generate(source: Path, target: Path) -> str:
    """The full content of ``target``: header, rewritten source, unused imports dropped, formatted."""
    relative = source.relative_to(ROOT)
    header = f"# Generated from {relative} by scripts/unasync.py; edit that file and run the script.\n"
    text = header + unasync_text(source.read_text(encoding="utf-8"))
    filename = str(target.relative_to(ROOT))
    text = _ruff(["check", "--fix", "--quiet", "--select", "F401,I"], text, filename)
    return _ruff(["format", "--quiet"], text, filename)


def pairs() -> list[tuple[Path, Path]]:
    found: list[tuple[Path, Path]] = []
    for source, target in SOURCES.items():
        src, dst = ROOT / source, ROOT / target
        if src.is_dir():
            found += [(f, dst / f.name) for f in sorted(src.glob("*.py")) if f.name != "__init__.py"]
        else:
            found.append((src, dst))
    return found


def stale() -> list[Path]:
    """Generated files whose content is not what the sources generate now."""
    return [
        target
        for source, target in pairs()
        if not target.exists() or target.read_text(encoding="utf-8") != generate(source, target)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing")
    args = parser.parse_args()
    if args.check:
        outdated = stale()
        for target in outdated:
            print(f"stale: {target.relative_to(ROOT)} (run python scripts/unasync.py)")
        return 1 if outdated else 0
    for source, target in pairs():
        target.write_text(generate(source, target), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
