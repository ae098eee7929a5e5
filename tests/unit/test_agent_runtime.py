"""The agent runtime: a directory that runs the agent with nothing from outside it on its paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from shells.runtime import agent_runtime


def test_the_runtime_runs_the_agent_from_its_own_stdlib_and_libraries(tmp_path: Path) -> None:
    runtime = agent_runtime.cached(tmp_path)
    assert agent_runtime.cached(tmp_path) == runtime  # cached by key: built once
    argv = runtime.argv(str(runtime.root), "--listen-fd", "x")
    # Every module the agent has is importable from the runtime alone, precompiled, no sources.
    modules = agent_runtime.guest_modules(agent_runtime.guest_dir())
    assert {"guest.agent", "guest.loop", "guest.execs", "guest.files", "guest.vm"} <= set(modules)
    script = f"import json, sys, {', '.join(modules)}; print(json.dumps(sys.path))"
    check = [*argv[: argv.index("-m")], "-c", script]
    done = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert all(p.startswith(str(runtime.root)) for p in json.loads(done.stdout)), done.stdout
    assert not list(runtime.root.rglob("*.py")) and not list(runtime.root.rglob("__pycache__"))
    assert (runtime.root / "lib" / runtime.loader).is_file()
    # The agent itself starts and refuses a bad argument with its usage.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and "--listen-fd needs a number" in done.stderr, done.stderr


def test_the_agent_starts_without_the_modules_only_file_ops_need(tmp_path: Path) -> None:
    """pathlib, shutil and typing are a large part of the interpreter's start-up; the file ops that
    need them are imported on their first use (``guest.agent._later``)."""
    runtime = agent_runtime.cached(tmp_path)
    argv = runtime.argv(str(runtime.root), "--listen-fd", "x")
    script = "import sys, guest.agent; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [*argv[: argv.index("-m")], "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    loaded = set(done.stdout.split())
    assert "guest.execs" in loaded, done.stderr
    assert not loaded & {"pathlib", "shutil", "typing", "guest.files", "guest.watch"}
