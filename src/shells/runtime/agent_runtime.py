"""The guest agent's own runtime: the host's Python, the libraries it needs and a minimal, precompiled
stdlib with the agent, in one directory that does not depend on anything in the shell's image.

A shell's image may have no ``python3`` and no libc at all (busybox-static, distroless, a musl
distribution); the agent must run in every one of them and start in a few milliseconds. So the host
assembles, once per host and code version, a directory::

    bin/python3                  the host's interpreter
    lib/<loader>, lib/lib*.so*   its dynamic loader and every shared library it and the extension
                                 modules below need (from ``ldd``)
    lib/python3.X/               only the stdlib modules the agent imports, plus ``encodings``, and the
                                 ``guest`` package: sourceless ``.pyc`` files compiled by the same
                                 interpreter, so nothing is compiled at start
    lib/python3.X/lib-dynload/   the extension modules among them

and the agent is started through that loader (``lib/<loader> --inhibit-cache --library-path lib
bin/python3 -I -S -m guest.agent``): the image's own loader, ``/etc/ld.so.cache`` and libraries are
never consulted, and nothing is put in the environment the agent's children inherit. ``-I -S``
keep the image's ``PYTHON*`` variables, site-packages and working directory out of the agent's path.

Which stdlib modules the agent needs is found by importing the agent's modules (and every module
its source names, also the ones it imports lazily) in a child of the host interpreter and listing
what got loaded. The result is cached under ``<cache>/agent-runtime/<key>``, ``key`` a digest of the
interpreter and of the sources, and copied from there into a tmpfs of the instance's
(``container/host_view.py``) so that mountinfo inside a shell names nothing of the host.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import shells.guest

from ..domain.errors import RuntimeFailure

FORMAT = 1
"""Bumped when the layout changes, so an older cached runtime is not reused."""
ENTRY_MODULES = ("runpy", "guest.agent", "guest.vm", "guest.sudo", "guest.sudo_server")
"""What the agent's start imports: runpy runs ``-m`` (frozen, but it imports unfrozen importlib parts)."""
WHOLE_PACKAGES = ("encodings",)
"""Packages shipped whole: codecs are looked up by name at run time, not imported by the agent."""
LEFT_OUT = ("_hashlib", "_bz2", "_lzma")
"""Optional extension modules the stdlib falls back from (hashlib to its own hashes; shutil without
bz2/lzma archives): leaving them out saves OpenSSL's libcrypto and two compressors (~6 MB)."""
_LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


@dataclass(frozen=True)
class AgentRuntime:
    """A built runtime: ``root`` on the host; ``argv`` starts the agent when ``root`` is seen at
    ``mounted_at`` (inside a shell)."""

    root: Path
    loader: str  # file name of the dynamic loader under lib/
    python_version: str  # "3.11"

    def argv(self, mounted_at: str, *agent_args: str) -> list[str]:
        return [
            f"{mounted_at}/lib/{self.loader}",
            "--inhibit-cache",
            "--library-path",
            f"{mounted_at}/lib",
            f"{mounted_at}/bin/python3",
            "-I",
            "-S",
            "-m",
            "guest.agent",
            *agent_args,
        ]


def interpreter() -> Path:
    """The host's real interpreter binary (a venv's ``python`` is a symlink to it)."""
    return Path(os.path.realpath(sys.executable))


def guest_dir() -> Path:
    return Path(shells.guest.__file__).resolve().parent


def cache_key() -> str:
    """Digest of everything the runtime is made from: the interpreter, the agent's sources and this
    module (its rules)."""
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0".encode())
    python = interpreter()
    st = python.stat()
    digest.update(f"{python}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for source in sorted(guest_dir().glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def load(root: Path) -> AgentRuntime:
    meta = json.loads((root / "runtime.json").read_text(encoding="utf-8"))
    return AgentRuntime(root=root, loader=meta["loader"], python_version=meta["python_version"])


def cached(cache_dir: Path) -> AgentRuntime:
    """The runtime for this host and code, built into ``cache_dir`` unless already there."""
    root = cache_dir / "agent-runtime" / cache_key()
    if (root / "runtime.json").is_file():
        return load(root)
    staging = root.with_name(f".{root.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build(staging)
        staging.rename(root)
    except FileExistsError:  # another instance built it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load(root)


def build(dest: Path) -> None:
    """Assemble the runtime in ``dest`` (a new directory)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    libdir = dest / "lib"
    pylib = libdir / f"python{version}"
    (dest / "bin").mkdir(parents=True)
    (pylib / "lib-dynload").mkdir(parents=True)
    python = interpreter()
    shutil.copy2(python, dest / "bin" / "python3")
    guest = guest_dir()
    elves = [python]
    for name, file in _loaded_modules(python, guest).items():
        path = Path(file).resolve()
        if path.suffix == ".so":
            shutil.copy2(path, pylib / "lib-dynload" / path.name)
            elves.append(path)
        elif path.is_relative_to(guest):
            _compile(path, pylib / "guest" / _pyc_name(path), f"guest/{path.name}")
        elif path.is_relative_to(stdlib):
            relative = path.relative_to(stdlib)
            _compile(path, pylib / relative.parent / _pyc_name(path), str(relative))
        else:
            raise RuntimeFailure(f"the agent imports {name} from {path}, outside the stdlib")
    for package in WHOLE_PACKAGES:
        for path in (stdlib / package).glob("*.py"):
            relative = path.relative_to(stdlib)
            _compile(path, pylib / relative.parent / _pyc_name(path), str(relative))
    # The interpreter finds its prefix by this landmark; os itself is frozen into it.
    _compile(stdlib / "os.py", pylib / "os.pyc", "os.py")
    loader = _copy_libraries(elves, libdir)
    meta = {"loader": loader, "python_version": version, "python": str(python)}
    (dest / "runtime.json").write_text(json.dumps(meta), encoding="utf-8")
    for path in [dest, *dest.rglob("*")]:
        if path.is_dir() or os.access(path, os.X_OK):
            path.chmod(0o755)
        else:
            path.chmod(0o644)


def _pyc_name(source: Path) -> str:
    return source.with_suffix(".pyc").name


def _compile(source: Path, target: Path, display: str) -> None:
    """A sourceless .pyc, so the interpreter neither compiles nor looks for the source."""
    target.parent.mkdir(parents=True, exist_ok=True)
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=display,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


_TRACE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
left_out, names = sys.argv[2].split(","), sys.argv[3:]
sys.modules.update(dict.fromkeys(left_out))
for name in names:
    importlib.import_module(name)
loaded = {n: m.__file__ for n, m in list(sys.modules.items()) if getattr(m, "__file__", None)}
print(json.dumps(loaded))
"""


def _loaded_modules(python: Path, guest: Path) -> dict[str, str]:
    """Every module with a file that importing the agent loads, by name: run in a child interpreter
    started the way the agent is (``-I -S``), with ``LEFT_OUT`` unimportable as in the runtime."""
    names = [*ENTRY_MODULES, *sorted(_imported_names(guest))]
    done = subprocess.run(
        [str(python), "-I", "-S", "-c", _TRACE, str(guest.parent), ",".join(LEFT_OUT), *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeFailure(f"listing the agent's modules failed: {done.stderr.strip()[-500:]}")
    modules: dict[str, str] = json.loads(done.stdout)
    return modules


def _imported_names(guest: Path) -> set[str]:
    """Absolute imports anywhere in the agent's sources, also inside functions (lazy imports)."""
    names: set[str] = set()
    for source in guest.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return {name for name in names if name != "__future__"}


def _copy_libraries(elves: list[Path], libdir: Path) -> str:
    """Copy the shared libraries ``elves`` need (by soname) and their loader into ``libdir``;
    return the loader's file name."""
    loader = ""
    for elf in elves:
        done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeFailure(f"ldd {elf} failed: {done.stderr.strip()}")
        for line in done.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if match is None:
                continue
            soname, path = match.groups()
            name = soname or Path(path).name
            if soname is None:
                loader = name
            target = libdir / name
            if not target.exists():
                shutil.copy2(os.path.realpath(path), target)
    if not loader:
        raise RuntimeFailure(f"no dynamic loader found for {elves[0]} (is it static?)")
    return loader
