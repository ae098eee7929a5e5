"""The runtime matrix: which language presets each isolation class offers on this host, and why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .isolation import Language, Runtime

VERSION_KEYS: dict[Language, str] = {
    Language.BASH: "bash",
    Language.NODE: "node",
    Language.PYTHON: "python",
    Language.RUST: "rustc",
    Language.GO: "go",
}
"""Which entry of a template's ``versions`` names the language's own version."""


@dataclass(frozen=True)
class RuntimeOffer:
    """One cell of the matrix: a language preset in one isolation class."""

    language: Language
    available: bool
    version: str = ""
    """The language's version when known (empty until the preset's template is built)."""
    notes: str = ""
    """What a caller should know: how it is provided, what is missing, or why it is unavailable."""

    def to_public(self, runtime: Runtime) -> dict[str, Any]:
        return {
            "language": self.language.value,
            "runtime": runtime.value,
            "available": self.available,
            "version": self.version,
            "notes": self.notes,
        }


def absent_class(runtime: Runtime, reason: str) -> list[RuntimeOffer]:
    """The row of a class this host does not run: every language unavailable, with the reason."""
    return [RuntimeOffer(lang, False, "", reason) for lang in Language]
