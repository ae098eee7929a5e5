"""Templates: their names, the spec format, content identity and the build plan.

A template is a read-only root filesystem a shell starts from. It is named ``name:tag``
(``python:1``). Three kinds exist: ``builtin`` (shipped with Shells, built on demand), ``spec``
(built from a user's TOML spec) and ``saved`` (captured from a user's shell). Everything here is
pure; the runtime builds and stores the bits, the control layer keeps the records.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .durable import StoredPart
from .errors import InvalidTemplateName, InvalidTemplateSpec

BUILD_FORMAT_VERSION = 1
"""Part of every built template's identity: bump it when ``plan_steps`` changes what a spec builds."""

DEFAULT_WORKDIR = "/workspace"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_VERSION_KEY = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?(/[a-z0-9-]+)?")
MAX_COMMANDS = 100
MAX_FILES = 200
MAX_PACKAGES = 500
MAX_FILE_BYTES = 512 * 1024
FORBIDDEN_FILE_ROOTS = ("/proc", "/sys", "/dev", "/.shells", "/tmp")
"""Mounts of every shell that a template cannot carry (what a build leaves in /workspace, it can)."""


class TemplateKind(StrEnum):
    BUILTIN = "builtin"
    SPEC = "spec"
    SAVED = "saved"
    IMAGE = "image"
    DOCKERFILE = "dockerfile"
    BUILD_STEP = "build_step"
    """A Dockerfile build's cached step: a template only that tenant's later builds start from,
    listed to nobody."""


class TemplateStatus(StrEnum):
    READY = "ready"
    NOT_BUILT = "not_built"


# names --------------------------------------------------------------------------------------------
def _name_rules(value: str) -> str:
    return (
        f"Template names look like 'name:tag' (e.g. 'myenv:1'): the name is 1-63 lowercase letters, "
        f"digits, '.', '_' or '-' starting with a letter or digit, the tag 1-32 letters, digits, '.', "
        f"'_' or '-'; got {value!r}."
    )


def split_template_name(value: object, key: str = "template") -> tuple[str, str | None]:
    """``"python:1"`` → ``("python", "1")``; ``"python"`` → ``("python", None)`` (for lookups)."""
    if not isinstance(value, str):
        raise InvalidTemplateName(f"'{key}' must be a string like 'python:1'.", {"key": key})
    name, sep, tag = value.partition(":")
    if not _NAME.fullmatch(name) or (sep and not _TAG.fullmatch(tag)):
        raise InvalidTemplateName(_name_rules(value), {"key": key, "value": value})
    return name, tag if sep else None


def template_ref(value: object, key: str = "template") -> str:
    """A checked reference to a template: ``name:tag``, or a bare ``name`` (see ``resolve`` rules)."""
    name, tag = split_template_name(value, key)
    return name if tag is None else f"{name}:{tag}"


def parse_template_name(value: object, key: str = "name") -> str:
    """A full ``name:tag``, as every new template needs; a missing tag is an error."""
    name, tag = split_template_name(value, key)
    if tag is None:
        raise InvalidTemplateName(
            f"Template name {value!r} has no tag; new templates need one, e.g. '{name}:1'.",
            {"key": key, "value": value},
        )
    return f"{name}:{tag}"


def tag_order(full_name: str) -> tuple[int, int, str]:
    """Sort key of a tag: numeric tags by number (2 < 10), and after every non-numeric tag."""
    tag = full_name.partition(":")[2]
    return (1, int(tag), "") if tag.isdigit() else (0, 0, tag)


# the spec -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSpec:
    path: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class TemplateSpec:
    """A parsed spec. See docs/templates.md for the format."""

    name: str
    parent: str
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    files: tuple[FileSpec, ...] = ()
    commands: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        """What the spec builds, independent of its name, its parent's name and apt's list order."""
        return {
            "apt": sorted(set(self.apt)),
            "pip": list(self.pip),
            "npm": list(self.npm),
            "files": [[f.path, f.content, f.mode] for f in self.files],
            "commands": list(self.commands),
            "env": dict(sorted(self.env.items())),
            "workdir": self.workdir,
            "versions": dict(sorted(self.versions.items())),
        }


def content_identity(spec: TemplateSpec, parent_hash: str) -> str:
    """hash(spec, parent's identity, build format): equal identities build equal templates."""
    doc = {"spec": spec.canonical(), "parent": parent_hash, "format": BUILD_FORMAT_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


_TOP_KEYS = {"name", "parent", "apt", "pip", "npm", "files", "commands", "env", "workdir", "versions"}
_FILE_KEYS = {"path", "content", "mode"}


def _bad(key: str, message: str) -> InvalidTemplateSpec:
    return InvalidTemplateSpec(f"Spec key '{key}': {message}", {"key": key})


def _unknown(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
        raise InvalidTemplateSpec(
            f"Unknown spec key '{prefix}{extra[0]}'. Keys allowed at {where}: {', '.join(sorted(known))}.",
            {"key": prefix + extra[0]},
        )


def _string(value: object, key: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise _bad(key, "must be a non-empty string.")
    if "\0" in value:
        raise _bad(key, "may not contain NUL bytes.")
    return value


def _strings(value: object, key: str, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _bad(key, "must be an array of strings.")
    if len(value) > limit:
        raise _bad(key, f"has {len(value)} entries; at most {limit} are allowed.")
    return tuple(_string(v, f"{key}[{i}]") for i, v in enumerate(value))


def _absolute_path(value: object, key: str) -> str:
    path = _string(value, key)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not path.startswith("/") or ".." in parts:
        raise _bad(key, f"must be an absolute path without '..', got {path!r}.")
    return "/" + "/".join(parts)


def _packages(doc: Mapping[str, Any], section: str) -> tuple[str, ...]:
    table = doc.get(section)
    if table is None:
        return ()
    if not isinstance(table, dict):
        raise _bad(section, f"must be a table: [{section}] with packages = [...].")
    _unknown(table, {"packages"}, f"{section}.")
    key = f"{section}.packages"
    packages = _strings(table.get("packages", []), key, MAX_PACKAGES)
    for i, pkg in enumerate(packages):
        bad_apt = section == "apt" and not _APT_PACKAGE.fullmatch(pkg)
        if bad_apt or pkg.startswith("-") or any(c.isspace() for c in pkg):
            raise _bad(f"{key}[{i}]", f"{pkg!r} is not a {section} package name.")
    return packages


def _file_mode(value: object, key: str) -> int:
    mode: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"(0o|0)?[0-7]{1,4}", value):
        mode = int(value.removeprefix("0o"), 8)
    if mode is None or not 0 <= mode <= 0o7777:
        raise _bad(key, "must be permission bits: 0o755 or the string '755'.")
    return mode


def _files(value: object) -> tuple[FileSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad("files", "must be an array of tables: [[files]] with path, content and mode.")
    if len(value) > MAX_FILES:
        raise _bad("files", f"has {len(value)} entries; at most {MAX_FILES} are allowed.")
    files = []
    for i, entry in enumerate(value):
        key = f"files[{i}]"
        _unknown(entry, _FILE_KEYS, f"{key}.")
        for required in ("path", "content"):
            if required not in entry:
                raise _bad(f"{key}.{required}", "is required.")
        path = _absolute_path(entry["path"], f"{key}.path")
        if path == "/" or any(path == r or path.startswith(r + "/") for r in FORBIDDEN_FILE_ROOTS):
            raise _bad(
                f"{key}.path",
                f"{path} is on a mount of every shell ({', '.join(FORBIDDEN_FILE_ROOTS)}), "
                "so it would not be part of the template; choose another path.",
            )
        content = _string(entry["content"], f"{key}.content", allow_empty=True)
        if len(content.encode()) > MAX_FILE_BYTES:
            raise _bad(f"{key}.content", f"is larger than {MAX_FILE_BYTES} bytes.")
        files.append(FileSpec(path, content, _file_mode(entry.get("mode", 0o644), f"{key}.mode")))
    return tuple(files)


def _string_table(value: object, key: str, key_re: re.Pattern[str], what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(key, f"must be a table of {what}.")
    out = {}
    for k, v in value.items():
        if not key_re.fullmatch(k):
            raise _bad(f"{key}.{k}", f"is not a valid name for {what}.")
        out[k] = _string(v, f"{key}.{k}", allow_empty=key == "env")
    return out


def parse_spec(text: str) -> TemplateSpec:
    """Parse and check a TOML spec; every problem is an InvalidTemplateSpec naming the key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidTemplateSpec(f"The spec is not valid TOML: {exc}.", {"key": ""}) from None
    _unknown(doc, _TOP_KEYS, "")
    for required in ("name", "parent"):
        if required not in doc:
            raise _bad(required, "is required.")
    workdir = doc.get("workdir")
    return TemplateSpec(
        name=parse_template_name(doc["name"], "name"),
        parent=template_ref(doc["parent"], "parent"),
        apt=_packages(doc, "apt"),
        pip=_packages(doc, "pip"),
        npm=_packages(doc, "npm"),
        files=_files(doc.get("files")),
        commands=_strings(doc.get("commands", []), "commands", MAX_COMMANDS),
        env=_string_table(doc.get("env"), "env", _ENV_KEY, "environment variables"),
        workdir=None if workdir is None else _absolute_path(workdir, "workdir"),
        versions=_string_table(doc.get("versions"), "versions", _VERSION_KEY, "version commands"),
    )


# the build plan -----------------------------------------------------------------------------------
APT_INSTALL = """\
export DEBIAN_FRONTEND=noninteractive
exec 9>>/var/cache/apt/archives/.shells-build.lock
flock 9  # build shells share apt's archives and lists: one apt at a time
apt-get update -q
apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-unsafe-io -o Dpkg::Use-Pty=0 "$@"
"""
NPM_INSTALL = """\
npm install --global --no-fund --no-audit --no-update-notifier "$@"
rm -rf "$HOME/.npm"
"""


@dataclass(frozen=True)
class RunStep:
    """A command run in the build shell (argv, so package names never meet a shell parser)."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class FilesStep:
    name: str
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class VersionsStep:
    """Run each version command and keep the first line it prints."""

    name: str
    commands: dict[str, str]


BuildStep = RunStep | FilesStep | VersionsStep


def _short(text: str, limit: int = 72) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit and "\n" not in text.strip() else line[: limit - 1] + "…"


def plan_steps(spec: TemplateSpec) -> list[BuildStep]:
    """The steps that build ``spec`` on top of its parent, in order: apt, pip, npm, files, commands,
    versions. Commands run with ``bash -e -o pipefail -c`` (not a login shell, so the template's
    PATH stays in force)."""
    steps: list[BuildStep] = []
    if spec.apt:
        apt = ("bash", "-e", "-c", APT_INSTALL, "apt", *spec.apt)
        steps.append(RunStep("apt install " + " ".join(spec.apt), apt))
    if spec.pip:
        pip = ("python3", "-m", "pip", "install", "--no-cache-dir", "--break-system-packages",
               "--root-user-action=ignore", *spec.pip)  # fmt: skip
        steps.append(RunStep("pip install " + " ".join(spec.pip), pip))
    if spec.npm:
        npm = ("bash", "-e", "-c", NPM_INSTALL, "npm", *spec.npm)
        steps.append(RunStep("npm install -g " + " ".join(spec.npm), npm))
    if spec.files:
        count = len(spec.files)
        steps.append(FilesStep(f"write {count} file{'s' if count != 1 else ''}", spec.files))
    for command in spec.commands:
        steps.append(RunStep(_short(command), ("bash", "-e", "-o", "pipefail", "-c", command)))
    if spec.versions:
        steps.append(VersionsStep("record versions: " + ", ".join(spec.versions), dict(spec.versions)))
    return steps


# build progress -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildStepStarted:
    index: int
    total: int
    name: str


@dataclass(frozen=True)
class BuildOutput:
    data: str


BuildEvent = BuildStepStarted | BuildOutput
BuildProgress = Callable[[BuildEvent], None]
"""Where a build reports what it is doing; must not block (the control layer queues the events)."""


# records ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageInfo:
    """Where an image template came from and how its image says to run: ``user`` runs every exec
    and terminal; ``entrypoint``, ``cmd`` and ``labels`` are recorded and exported again. ``source``
    is the reference imported (or ``Dockerfile``), ``digest`` its manifest's digest (None for a
    build)."""

    source: str
    digest: str | None = None
    user: str | None = None
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "digest": self.digest,
            "user": self.user,
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "labels": dict(self.labels),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> ImageInfo | None:
        if not doc:
            return None
        return cls(
            source=str(doc.get("source") or ""),
            digest=doc.get("digest"),
            user=doc.get("user"),
            entrypoint=tuple(str(a) for a in doc.get("entrypoint") or ()),
            cmd=tuple(str(a) for a in doc.get("cmd") or ()),
            labels={str(k): str(v) for k, v in dict(doc.get("labels") or {}).items()},
        )


@dataclass(frozen=True)
class TemplateMeta:
    """What a built template carries with its bits (and what its record shows)."""

    name: str
    kind: TemplateKind
    parent: str | None
    content_hash: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = DEFAULT_WORKDIR
    versions: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None
    created_at: datetime | None = None
    has_workspace: bool = False
    image: ImageInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image.to_json() if self.image else None,
            "name": self.name,
            "kind": self.kind.value,
            "parent": self.parent,
            "content_hash": self.content_hash,
            "env": dict(self.env),
            "workdir": self.workdir,
            "versions": dict(self.versions),
            "size_bytes": self.size_bytes,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "has_workspace": self.has_workspace,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TemplateMeta:
        created = doc.get("created_at")
        return cls(
            name=str(doc["name"]),
            kind=TemplateKind(doc["kind"]),
            parent=doc.get("parent"),
            content_hash=str(doc["content_hash"]),
            env={str(k): str(v) for k, v in dict(doc.get("env") or {}).items()},
            workdir=str(doc.get("workdir") or DEFAULT_WORKDIR),
            versions={str(k): str(v) for k, v in dict(doc.get("versions") or {}).items()},
            size_bytes=doc.get("size_bytes"),
            created_at=datetime.fromisoformat(created) if created else None,
            has_workspace=bool(doc.get("has_workspace", False)),
            image=ImageInfo.from_json(doc.get("image")),
        )


def derive_meta(
    name: str, kind: TemplateKind, content_hash: str, spec: TemplateSpec, parent: TemplateMeta
) -> TemplateMeta:
    """What a template built from ``spec`` on ``parent`` carries: the parent's env, workdir and
    versions, overridden by the spec's (versions are filled in by the build)."""
    return TemplateMeta(
        name=name,
        kind=kind,
        parent=parent.name,
        content_hash=content_hash,
        env={**parent.env, **spec.env},
        workdir=spec.workdir or parent.workdir,
        versions=dict(parent.versions),
    )


@dataclass(frozen=True)
class TemplateRecord:
    """A template as the control plane lists it: its metadata, who may use it, and whether it is built.

    ``tenant`` is empty for built-ins (everyone may use them)."""

    meta: TemplateMeta
    status: TemplateStatus
    tenant: str = ""
    owner: str = ""
    durable_at: datetime | None = None
    """When its bits were all in the object store (docs/storage.md); None for a built-in, which
    every machine builds or imports itself."""
    parts: tuple[StoredPart, ...] = ()

    @property
    def name(self) -> str:
        return self.meta.name

    def to_public(self) -> dict[str, Any]:
        m = self.meta
        return {
            "name": m.name,
            "kind": m.kind.value,
            "parent": m.parent,
            "status": self.status.value,
            "versions": dict(m.versions),
            "size_bytes": m.size_bytes,
            "content_hash": m.content_hash,
            "env": dict(m.env),
            "workdir": m.workdir,
            "created_at": m.created_at.isoformat() if m.created_at else None,
            "image": m.image.to_json() if m.image else None,
            "durable": self.durable_at is not None,
            "durable_at": self.durable_at.isoformat() if self.durable_at else None,
        }
