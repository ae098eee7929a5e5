"""One-off: rename the names that meant two things (issue 24), over a whole tree.

    python scripts/renames.py [TREE]        # TREE defaults to the repository this script is in

Each rename is a word-boundary regex over Python sources, docs and tests. A name that is also used
for something else (``Kind``, ``Port``, ``NetworkPolicy``: the SDK's public ``Port`` and
``NetworkPolicy`` stay as they are) is rewritten only in the module that defines it and in files that
import it from there; a name used for one thing only is rewritten everywhere. Modules named after
an old name are moved (``git mv`` when the tree is a git work tree). Running it twice changes
nothing the second time. It also moves call sites of the store's tenancy and usage areas
(``CALL_SITES``), which code from other branches may still write the old way.

- ``runtime.container.template_store.TemplateStorage`` -> ``template_bits.TemplateBits``: the bits
  of templates in the pool (``store.templates.TemplateStore`` is their record);
- ``guest.protocol.Kind`` -> ``FrameKind``: the kind of a guest protocol frame;
- ``runtime.wasm.protocol.Kind`` -> ``WorkerFrameKind``: the kind of a wasm worker's frame;
- ``runtime.network.links.Port`` -> ``VethLink``: one veth pair of a shell (``sdk.Port`` is an
  exposed port);
- ``domain.network.NetworkPolicy`` -> ``NetworkAccess``: where a shell may connect, as recorded
  (``sdk.NetworkPolicy`` is the SDK's; ``runtime.network.egress.EgressPolicy`` the egress proxy's);
- ``domain.capabilities.EVERY_CLASS`` -> ``COMMON_CAPABILITIES``: what every isolation class can do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = {".py", ".md", ".pyi", ".toml", ".cfg", ".ini", ".txt"}
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", "build", "dist"}


@dataclass(frozen=True)
class Rename:
    old: str
    new: str
    module: str
    """Dotted module (under ``shells``) that defines the name."""
    scoped: bool
    """Only in the defining module and its importers (the name means other things elsewhere)."""


RENAMES = (
    Rename("TemplateStorage", "TemplateBits", "runtime.container.template_store", scoped=False),
    Rename("Kind", "FrameKind", "guest.protocol", scoped=True),
    Rename("Kind", "WorkerFrameKind", "runtime.wasm.protocol", scoped=True),
    Rename("Port", "VethLink", "runtime.network.links", scoped=True),
    Rename("NetworkPolicy", "NetworkAccess", "domain.network", scoped=True),
    Rename("EVERY_CLASS", "COMMON_CAPABILITIES", "domain.capabilities", scoped=False),
)
_TENANCY = (
    "ensure_tenant|add_tenant|get_tenant|list_tenants|set_tenant_quotas|ensure_principal|get_principal|"
    "list_principals|add_token|find_token|get_token|list_tokens|revoke_token|touch_token|put_grant|"
    "get_grant|list_grants|delete_grant|granted_shell_ids|add_term_credential|find_term_credential|"
    "get_term_credential|list_term_credentials|revoke_term_credential|shape_counts|snapshot_count|"
    "token_revocations"
)
_USAGE = (
    "intervals|billed_tenants|repair_intervals|shell_counts|billing_terms|set_billing_terms|budgeted_tenants"
)
CALL_SITES = (
    (re.compile(rf"(?<=store)\.({_TENANCY})\b"), r".tenancy.\1"),
    (re.compile(rf"(?<=store)\.({_USAGE})\b"), r".usage.\1"),
)
"""Not a rename: the store's tenancy and usage areas stopped being mixins of ``Store`` (issue 24's
store pattern), so ``ctx.store.get_tenant(...)`` written on another branch becomes
``ctx.store.tenancy.get_tenant(...)``. Every receiver of these methods ends in ``store``."""
CALL_SITE_EXEMPT = ("src/shells/store/tenancy.py", "src/shells/store/usage.py")
MOVES = (
    ("src/shells/runtime/container/template_store.py", "src/shells/runtime/container/template_bits.py"),
    ("tests/unit/test_template_storage.py", "tests/unit/test_template_bits.py"),
)
MODULE_RENAMES = (("template_store", "template_bits"),)
"""Module names rewritten with the moves (``from .template_store import``, ``container/template_store``)."""

_FROM_IMPORT = re.compile(r"^\s*from\s+(\.*[\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)", re.MULTILINE)


def _files(tree: Path) -> list[Path]:
    found = []
    for path in tree.rglob("*"):
        if any(part in SKIPPED_DIRS for part in path.relative_to(tree).parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            found.append(path)
    return sorted(found)


def _module_of(tree: Path, path: Path) -> str | None:
    """``runtime.wasm.pool`` for ``src/shells/runtime/wasm/pool.py``; None outside the package."""
    try:
        relative = path.relative_to(tree / "src" / "shells")
    except ValueError:
        return None
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(importer: str | None, target: str) -> str:
    """An import's module as a dotted name under ``shells`` (relative ones from ``importer``)."""
    if not target.startswith("."):
        return target.removeprefix("shells.") if target.startswith("shells.") else f"<{target}>"
    level = len(target) - len(target.lstrip("."))
    base = (importer or "").split(".")
    package = base[: len(base) - level] if importer is not None else []
    rest = target.lstrip(".")
    return ".".join([*package, *([rest] if rest else [])])


def _imports_name(tree: Path, path: Path, text: str, name: str, providers: set[str]) -> bool:
    """Whether ``path`` imports ``name`` from one of the modules in ``providers``."""
    importer = _module_of(tree, path)
    if path.name == "__init__.py" and importer is not None:
        importer = f"{importer}.__init__"
    for match in _FROM_IMPORT.finditer(text):
        if _resolve(importer, match.group(1)) not in providers:
            continue
        names = re.findall(r"\b(\w+)\b(?:\s+as\s+\w+)?", match.group(2).replace("(", " ").replace(")", " "))
        if name in names:
            return True
    return False


def _scope(tree: Path, texts: dict[Path, str], rename: Rename) -> set[Path]:
    """The files a scoped rename applies to: the defining module, every file importing the name from
    it, and (to a fixed point) every file importing it from one of those (a re-export)."""
    providers = {rename.module}
    scope = {path for path in texts if _module_of(tree, path) == rename.module}
    while True:
        more = {
            path
            for path, text in texts.items()
            if path not in scope
            and path.suffix == ".py"
            and _imports_name(tree, path, text, rename.old, providers)
        }
        if not more:
            return scope
        scope |= more
        providers |= {module for path in more if (module := _module_of(tree, path)) is not None}


def _move(tree: Path, old: str, new: str) -> None:
    source, target = tree / old, tree / new
    if not source.exists() or target.exists():
        return
    done = subprocess.run(["git", "-C", str(tree), "mv", old, new], capture_output=True, check=False)
    if done.returncode != 0:
        source.rename(target)
    print(f"moved {old} -> {new}")


def main(argv: list[str]) -> int:
    tree = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    if not (tree / "src" / "shells").is_dir():
        print(f"{tree} is not a Shells tree (no src/shells)", file=sys.stderr)
        return 2
    this = Path(__file__).resolve()
    # Decide scoped renames on the tree as it is, before any rewrite changes the imports they key on.
    files = [path for path in _files(tree) if path.resolve() != this]
    texts = {path: path.read_text(encoding="utf-8", errors="surrogateescape") for path in files}
    scopes = {rename: _scope(tree, texts, rename) for rename in RENAMES if rename.scoped}
    plans = {path: [r for r in RENAMES if not r.scoped or path in scopes[r]] for path in files}
    changed: list[Path] = []
    for path in files:
        text = original = texts[path]
        for rename in plans[path]:
            text = re.sub(rf"(?<![\w.]){re.escape(rename.old)}\b", rename.new, text)
            text = re.sub(
                rf"(?<=\b{re.escape(rename.module.rsplit('.', 1)[-1])}\.){re.escape(rename.old)}\b",
                rename.new,
                text,
            )
        if path.suffix == ".py" and path.relative_to(tree).as_posix() not in CALL_SITE_EXEMPT:
            for pattern, replacement in CALL_SITES:
                text = pattern.sub(replacement, text)
        for old_module, new_module in MODULE_RENAMES:
            text = re.sub(rf"\b{old_module}\b", new_module, text)
        if text != original:
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
            changed.append(path)
    for old, new in MOVES:
        _move(tree, old, new)
    print(f"rewrote {len(changed)} files")
    _tidy(tree, [path for path in changed if path.suffix == ".py" and path.exists()])
    return 0


def _tidy(tree: Path, sources: list[Path]) -> None:
    """Longer names break import order and line lengths: sort the imports and format the rewritten
    sources with the project's ruff (its settings come from the tree's pyproject)."""
    moved = [tree / new for _, new in MOVES if (tree / new).exists()]
    targets = [str(path) for path in [*sources, *moved]]
    candidates = [tree / ".venv" / "bin" / "ruff", Path(sys.executable).parent / "ruff"]
    ruff = next((str(path) for path in candidates if path.exists()), None) or shutil.which("ruff")
    if not targets:
        return
    if ruff is None:
        print("ruff not found: sort the imports and format the rewritten files yourself", file=sys.stderr)
        return
    for args in (["check", "--fix", "--select", "I", "-q"], ["format", "-q"]):
        subprocess.run([ruff, *args, *targets], cwd=tree, check=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
