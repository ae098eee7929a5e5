"""The console's committed bundle is the build of the committed sources.

``make console`` (esbuild, from ``console/package-lock.json``) writes ``src/shells/console`` and a
MANIFEST holding the SHA-256 of every input and output. The build is deterministic, so checking the
hashes here, without npm, tells a stale bundle (sources changed, not rebuilt) or a hand-edited one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "src/shells/console/MANIFEST"


def _recorded() -> dict[str, str]:
    lines = MANIFEST.read_text(encoding="utf-8").splitlines()
    return {path: digest for digest, path in (line.split("  ", 1) for line in lines)}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_bundle_was_built_from_the_committed_sources_and_lockfile() -> None:
    recorded = _recorded()
    inputs = {"console/build.mjs", "console/package-lock.json"} | {
        f"console/src/{p.name}" for p in (ROOT / "console/src").iterdir()
    }
    assert inputs <= set(recorded), f"not in the last build (run `make console`): {inputs - set(recorded)}"
    stale = [p for p in sorted(inputs) if _digest(ROOT / p) != recorded[p]]
    assert not stale, f"changed since the last build (run `make console`): {stale}"


def test_the_served_files_are_the_ones_the_build_wrote() -> None:
    bundle = ROOT / "src/shells/console"
    served = {f"src/shells/console/{p.name}" for p in bundle.iterdir() if p.name != "MANIFEST"}
    outputs = {p for p in _recorded() if p.startswith("src/")}
    assert served == outputs
    assert [p for p in sorted(outputs) if _digest(ROOT / p) != _recorded()[p]] == []
