"""Dockerfiles, parsed into the steps a template build runs. Pure: text in, instructions out.

Supported: ``FROM`` (one stage, a template name), ``RUN``, ``COPY``/``ADD`` (from the build context,
no flags, no URLs), ``ENV``, ``ARG``, ``WORKDIR``, ``USER``, ``LABEL``, ``ENTRYPOINT``, ``CMD``;
comments, blank lines, ``\\`` continuations, the JSON (exec) form of RUN/CMD/ENTRYPOINT and
``$VAR``/``${VAR}`` from ARG and ENV. Anything else is ``InvalidDockerfile`` naming the line.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from .errors import InvalidDockerfile
from .limits import DOCKERFILE_MAX_BYTES

SUPPORTED = ("FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "LABEL", "ENTRYPOINT", "CMD")
MAX_INSTRUCTIONS = 200
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword, its argument text (continuations joined) and its first line."""

    line: int
    keyword: str
    text: str

    @property
    def source(self) -> str:
        return f"{self.keyword} {self.text}"


def bad(ins: Instruction | int, why: str) -> InvalidDockerfile:
    line = ins if isinstance(ins, int) else ins.line
    return InvalidDockerfile(f"Dockerfile line {line}: {why}", {"line": line})


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of ``text``; the first must be FROM and no other may be."""
    if len(text.encode()) > DOCKERFILE_MAX_BYTES:
        raise InvalidDockerfile(f"The Dockerfile is larger than {DOCKERFILE_MAX_BYTES} bytes.", {"line": 0})
    found: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        found.append(_instruction(start, pending + stripped))
        pending = ""
    if pending:
        found.append(_instruction(start, pending))
    if not found or found[0].keyword != "FROM":
        raise bad(found[0] if found else 1, "a Dockerfile starts with FROM.")
    for ins in found[1:]:
        if ins.keyword == "FROM":
            raise bad(ins, "multi-stage builds (a second FROM) are not supported; use one stage.")
    if len(found) > MAX_INSTRUCTIONS:
        raise bad(found[MAX_INSTRUCTIONS], f"at most {MAX_INSTRUCTIONS} instructions are allowed.")
    return found


def _instruction(line: int, content: str) -> Instruction:
    keyword, _, rest = content.strip().partition(" ")
    keyword = keyword.upper()
    if keyword not in SUPPORTED:
        raise bad(line, f"{keyword} is not supported; Shells builds {', '.join(SUPPORTED)}.")
    if not rest.strip():
        raise bad(line, f"{keyword} needs an argument.")
    return Instruction(line, keyword, rest.strip())


def substitute(ins: Instruction, text: str, variables: dict[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` replaced by their ARG/ENV values (unknown ones by nothing)."""
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def exec_form(ins: Instruction) -> tuple[str, ...] | None:
    """The argv of a JSON-array argument (``["a", "b"]``), None for the shell form."""
    if not ins.text.startswith("["):
        return None
    try:
        value = json.loads(ins.text)
    except ValueError:
        raise bad(ins, f"{ins.keyword} looks like a JSON array but does not parse.") from None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise bad(ins, f"{ins.keyword}'s JSON form must be a non-empty array of strings.")
    return tuple(value)


def command(ins: Instruction) -> tuple[str, ...]:
    """RUN/CMD/ENTRYPOINT as an argv: the JSON form as given, the shell form under ``/bin/sh -c``."""
    return exec_form(ins) or ("/bin/sh", "-c", ins.text)


def pairs(ins: Instruction, variables: dict[str, str]) -> dict[str, str]:
    """ENV/LABEL/ARG ``k=v k2="v 2"`` (or the old ``ENV k v`` form) as a dict."""
    try:
        words = shlex.split(ins.text)
    except ValueError as exc:
        raise bad(ins, f"cannot split the arguments: {exc}.") from None
    if ins.keyword in ("ENV", "LABEL") and words and "=" not in words[0]:
        if len(words) < 2:
            raise bad(ins, f"{ins.keyword} needs KEY=value.")
        return {words[0]: substitute(ins, " ".join(words[1:]), variables)}
    out = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not _NAME.fullmatch(key) and ins.keyword != "LABEL":
            raise bad(ins, f"{key!r} is not a variable name.")
        if not eq and ins.keyword != "ARG":
            raise bad(ins, f"{word!r} is not KEY=value.")
        out[key] = substitute(ins, value, variables)
    return out


def copy_args(ins: Instruction, variables: dict[str, str]) -> tuple[list[str], str]:
    """(sources, destination) of COPY/ADD; flags and URLs are refused."""
    form = exec_form(ins)
    try:
        words = list(form) if form else shlex.split(ins.text)
    except ValueError as exc:
        raise bad(ins, f"cannot split the arguments: {exc}.") from None
    words = [substitute(ins, w, variables) for w in words]
    if any(w.startswith("--") for w in words):
        raise bad(ins, f"{ins.keyword} flags (--from, --chown, …) are not supported.")
    if len(words) < 2:
        raise bad(ins, f"{ins.keyword} needs at least one source and a destination.")
    if any("://" in w for w in words[:-1]):
        raise bad(ins, f"{ins.keyword} from a URL is not supported; put the file in the build context.")
    return words[:-1], words[-1]
