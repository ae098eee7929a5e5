"""Isolation classes (the ``runtime`` field) and language presets."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from .errors import InvalidRequest


class Runtime(StrEnum):
    """How hard the wall is: wasm < container < microvm."""

    WASM = "wasm"
    CONTAINER = "container"
    MICROVM = "microvm"


class Language(StrEnum):
    BASH = "bash"
    NODE = "node"
    PYTHON = "python"
    RUST = "rust"
    GO = "go"


DEFAULT_RUNTIME = Runtime.CONTAINER

PRESET_TEMPLATES: dict[Language, str] = {
    Language.BASH: "base:1",
    Language.PYTHON: "python:1",
    Language.NODE: "node:1",
    Language.RUST: "rust:1",
    Language.GO: "go:1",
}
"""Which template a language preset starts from when the request names none."""

DEVBOX_TEMPLATE = "devbox:1"
"""The template with every preset's toolchain plus Bun and the Pi coding agent; ``shells template
build --all`` builds it with the presets."""

DEFAULT_LANGUAGE = Language.PYTHON
"""The preset ``make up`` prepares and the warm pool keeps ready."""


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: object, field: str) -> E:
    """Parse a wire string into ``enum`` or raise an InvalidRequest that lists the choices."""
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    choices = ", ".join(m.value for m in enum)
    raise InvalidRequest(f"Unknown {field} {value!r}. Choose one of: {choices}.", {"field": field})
