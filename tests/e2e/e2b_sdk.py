"""E2B's own Python SDK, unchanged from PyPI, in a virtualenv of its own (it pins its own connectrpc,
protobuf-py and pyqwest, which must not meet the server's). Built once per version and cached under
``~/.cache/shells/e2b-sdk/<version>``; scenarios run in it as scripts and report JSON on stdout."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

E2B_VERSION = "2.45.1"
CACHE = Path(os.environ.get("SHELLS_E2B_SDK_CACHE", Path.home() / ".cache" / "shells" / "e2b-sdk"))


def sdk_python(version: str = E2B_VERSION) -> Path:
    """The interpreter of a virtualenv holding ``e2b==version`` (made on first use)."""
    venv = CACHE / version
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"e2b=={version}"], check=True, timeout=600
            )
            ready.touch()
    return python


EXIT_NOW = "\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n"
"""Appended to every scenario that got to its end: the SDK's HTTP library (pyqwest, Rust threads)
now and then aborts while the interpreter finalizes, after the scenario is done; skip finalizing."""


def run_e2b(script: str, env: dict[str, str], timeout_s: float = 240.0) -> Any:
    """Run ``script`` (Python, dedented) with the E2B SDK; it prints one JSON document last."""
    done = subprocess.run(
        [str(sdk_python()), "-c", textwrap.dedent(script) + EXIT_NOW],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()), **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"E2B script failed ({done.returncode}):\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
