"""The TypeScript packages in sdk-ts/ as a user gets them: a Node.js new enough for them, ``npm ci`` from
the committed lockfile, ``tsc``, ``npm pack``. Shared by tests/e2e/test_sdk_typescript.py and
benchmarks/bench_sdk_ts.py."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SDK_TS = REPO / "sdk-ts"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shells"
NODE_VERSION = "22.23.3"
"""Installed from the npm registry when the host's Node.js is older than the packages need (Debian 12
ships 18), as scripts/install-mcp-inspector.sh does."""
NEEDED_NODE = (20, 10)


@dataclass(frozen=True)
class Toolchain:
    path: str
    """``PATH`` with a new enough ``node`` first."""
    tarballs: tuple[Path, Path]
    """The packed ``@shells/sdk`` and ``@shells/mcp``."""

    def env(self, **extra: str) -> dict[str, str]:
        return os.environ | {"PATH": self.path, "npm_config_cache": str(CACHE / "npm")} | extra

    def run(
        self, *cmd: str, timeout: float = 900, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            cmd,
            check=False,
            cwd=SDK_TS,
            env=self.env(**(extra or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-20000:]}\n{done.stderr[-20000:]}"
        return done


def node_path() -> str:
    """A ``PATH`` whose ``node`` is at least ``NEEDED_NODE``."""
    path = os.environ["PATH"]
    node = shutil.which("node")
    if node:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
        if tuple(int(p) for p in version.strip().lstrip("v").split(".")[:2]) >= NEEDED_NODE:
            return path
    prefix = CACHE / f"node-{NODE_VERSION}"
    if not (prefix / "node_modules" / "node" / "bin" / "node").exists():
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"node@{NODE_VERSION}"],
            check=True,
            timeout=900,
        )
    return f"{prefix / 'node_modules' / 'node' / 'bin'}:{path}"


def build() -> Toolchain:
    """``npm ci`` (skipped while the lockfile is unchanged; downloads cached under ~/.cache/shells/npm),
    ``tsc``, then ``npm pack``; the tarballs are copied under a name of their content, so that ``npx``
    never runs a stale install of an older build."""
    chain = Toolchain(node_path(), (Path(), Path()))
    lock = hashlib.sha256((SDK_TS / "package-lock.json").read_bytes()).hexdigest()[:16]
    stamp = SDK_TS / "node_modules" / f".shells-lock-{lock}"
    if not stamp.exists():
        chain.run("npm", "ci", "--no-audit", "--no-fund", "--prefer-offline")
        stamp.touch()
    chain.run("npm", "run", "build")
    shutil.rmtree(SDK_TS / "packed", ignore_errors=True)
    chain.run("npm", "run", "pack")
    packed = []
    for name in ("shells-sdk-0.1.0.tgz", "shells-mcp-0.1.0.tgz"):
        data = (SDK_TS / "packed" / name).read_bytes()
        kept = CACHE / "sdk-ts-pack" / hashlib.sha256(data).hexdigest()[:16] / name
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(data)
        packed.append(kept)
    return Toolchain(chain.path, (packed[0], packed[1]))
