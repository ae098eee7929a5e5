"""The built-in templates: ``base:1`` (debootstrap on the host) and the specs shipped in ``builtin/``.

A built-in's identity is known without building it (its spec, its parent's identity and the build
format), so a cached artifact on the host can be found by name and identity alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ...domain.templates import (
    TemplateKind,
    TemplateMeta,
    TemplateSpec,
    content_identity,
    derive_meta,
    parse_spec,
)
from ..images import RootfsSpec

BASE = "base:1"
BASE_ROOTFS = RootfsSpec()
SPECS_DIR = Path(__file__).with_name("builtin")

MEASURED_BUILD_S: dict[str, int] = {
    "base:1": 60,
    "python:1": 20,
    "node:1": 45,
    "go:1": 30,
    "rust:1": 35,
    "devbox:1": 120,
    "wasm-build:1": 90,
    "e2b-base:1": 60,
}
"""Build times of each built-in on a 2-core host with its parent ready (rounded up from
``benchmarks/bench_templates.py --cold``; see docs/templates.md), for the messages that say what a
build will cost."""


@dataclass(frozen=True)
class Builtin:
    name: str
    parent: str | None
    spec: TemplateSpec | None  # None for base:1, which debootstrap makes
    spec_text: str
    content_hash: str

    def meta(self) -> TemplateMeta:
        """The metadata the built template will have, except versions and size (known after a build)."""
        if self.spec is None or self.parent is None:
            return TemplateMeta(self.name, TemplateKind.BUILTIN, None, self.content_hash)
        parent = builtins()[self.parent].meta()
        return derive_meta(self.name, TemplateKind.BUILTIN, self.content_hash, self.spec, parent)


@cache
def builtins() -> dict[str, Builtin]:
    """Every built-in by name, parents before children."""
    found: dict[str, Builtin] = {BASE: Builtin(BASE, None, None, "", BASE_ROOTFS.content_hash())}
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(SPECS_DIR.glob("*.toml"))}
    pending = {filename: parse_spec(text) for filename, text in texts.items()}
    while pending:
        ready = [f for f, spec in pending.items() if spec.parent in found]
        if not ready:
            raise RuntimeError(f"built-in specs with unknown parents: {sorted(pending)}")
        for filename in ready:
            spec = pending.pop(filename)
            parent_hash = found[spec.parent].content_hash
            found[spec.name] = Builtin(
                spec.name, spec.parent, spec, texts[filename], content_identity(spec, parent_hash)
            )
    return found


def artifact(cache_dir: Path, b: Builtin) -> Path:
    """Where a built built-in is cached on this host for every instance: ``<name>-<tag>-<hash>.tar.zst``
    (its metadata next to it, with ``.json`` appended)."""
    name, _, tag = b.name.partition(":")
    return Path(cache_dir) / "templates" / f"{name}-{tag}-{b.content_hash[:16]}.tar.zst"
