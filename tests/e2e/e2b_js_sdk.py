"""E2B's own JS SDK, unchanged from npm (``tests/e2e/e2b_js/``: package.json and its committed
lockfile), installed once per lockfile under ``~/.cache/shells/e2b-js/<lock hash>``; scenarios run
there as ES modules on a new enough Node.js and report JSON as their last line of output."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from .sdk_ts import CACHE, node_path

PROJECT = Path(__file__).resolve().parent / "e2b_js"
NEEDED_FILES = ("package.json", "package-lock.json")


def install() -> tuple[Path, str]:
    """The directory holding ``node_modules/e2b`` for the committed lockfile, and the PATH to run in."""
    path = node_path()
    lock = hashlib.sha256((PROJECT / "package-lock.json").read_bytes()).hexdigest()[:16]
    home = CACHE / "e2b-js" / lock
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (home / ".ready").exists():
            for name in NEEDED_FILES:
                shutil.copyfile(PROJECT / name, home / name)
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=home,
                env=os.environ | {"PATH": path, "npm_config_cache": str(CACHE / "npm")},
                check=True,
                capture_output=True,
                timeout=900,
            )
            (home / ".ready").touch()
    return home, path


def run_e2b_js(script: str, env: dict[str, str], timeout_s: float = 240.0) -> Any:
    """Run ``script`` (an ES module, dedented) with the E2B JS SDK; it prints one JSON document last."""
    home, path = install()
    with tempfile.NamedTemporaryFile("w", suffix=".mjs", dir=home, delete=False) as f:
        f.write(textwrap.dedent(script))
    try:
        done = subprocess.run(
            ["node", f.name],
            cwd=home,
            env={"PATH": path, "HOME": str(Path.home()), **env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        Path(f.name).unlink()
    if done.returncode != 0:
        raise AssertionError(f"E2B JS script failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
