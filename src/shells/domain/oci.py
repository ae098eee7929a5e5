"""OCI images as Shells sees them: references, media types, the parts of an image config a template
keeps. Pure: no I/O.

A reference is ``[registry[:port]/]repository[:tag][@sha256:<hex>]`` as Docker and podman read it:
the first component names a registry only if it holds a ``.`` or a ``:`` or is ``localhost``;
otherwise the image is on Docker Hub (``registry-1.docker.io``, single names under ``library/``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ImageRejected, InvalidImageReference

DOCKER_HUB = "registry-1.docker.io"
DEFAULT_TAG = "latest"
MAX_REFERENCE_CHARS = 512

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
LAYER_COMPRESSION: dict[str, str] = {
    OCI_LAYER_GZIP: "gzip",
    DOCKER_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_TAR: "none",
}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. ``digest`` pins the content; ``tag`` is kept for display."""

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint is asked for: the digest when pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image_ref(value: object, key: str = "image") -> ImageRef:
    """Parse ``value`` as an image reference, or InvalidImageReference naming ``key``."""

    def bad(why: str) -> InvalidImageReference:
        return InvalidImageReference(
            f"'{key}' is not an image reference ({why}); write it as registry/repository:tag or "
            "repository@sha256:<digest>, e.g. registry.example.com:5000/team/app:1.2.",
            {"field": key},
        )

    if not isinstance(value, str) or not value or len(value) > MAX_REFERENCE_CHARS:
        raise bad("a non-empty string of at most 512 characters is needed")
    rest, _, digest = value.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        raise bad(f"the digest {digest!r} is not sha256:<64 hex digits>")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.fullmatch(first):
            raise bad(f"{first!r} is not a registry host")
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if colon and not _TAG.fullmatch(tag):
        raise bad(f"the tag {tag!r} is not valid")
    if not _REPOSITORY.fullmatch(name):
        raise bad(f"the repository {name!r} must be lowercase path components")
    if registry == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    return ImageRef(registry, name, tag or (None if digest else DEFAULT_TAG), digest or None)


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def matches(self, doc: Mapping[str, Any]) -> bool:
        if doc.get("os") != self.os or doc.get("architecture") != self.architecture:
            return False
        return self.variant is None or doc.get("variant") in (None, self.variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


_MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_platform(machine: str) -> Platform:
    """The OCI platform of a host whose ``uname -m`` is ``machine``."""
    arch = _MACHINES.get(machine, machine)
    return Platform("linux", arch, "v8" if arch == "arm64" else ("v7" if arch == "arm" else None))


def pick_platform(index: Mapping[str, Any], platform: Platform) -> Mapping[str, Any]:
    """The entry of a manifest list (an OCI index) for ``platform``, or ImageRejected listing what the
    image offers."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageRejected("The image index has no 'manifests' list.", {"layer": None})
    offered = []
    for entry in entries:
        plat = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(plat, dict):
            if platform.matches(plat):
                return entry  # type: ignore[no-any-return]
            offered.append(f"{plat.get('os')}/{plat.get('architecture')}")
    raise ImageRejected(
        f"The image has no manifest for this host's platform {platform}; it offers "
        f"{', '.join(offered) or 'none'}.",
        {"platform": str(platform), "offered": offered},
    )


@dataclass(frozen=True)
class ImageDefaults:
    """What an image's config says about how to run it, kept as a template's defaults: ``env`` and
    ``workdir`` apply to every exec and terminal, ``user`` runs them, ``entrypoint``/``cmd`` and
    ``labels`` are recorded (and exported again)."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "env": dict(self.env),
            "workdir": self.workdir,
            "user": self.user,
            "entrypoint": list(self.entrypoint),
            "cmd": list(self.cmd),
            "labels": dict(self.labels),
        }


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def image_defaults(config: Mapping[str, Any]) -> ImageDefaults:
    """The run defaults of an image config document (its ``config`` object; missing parts empty)."""
    run = config.get("config") or {}
    if not isinstance(run, dict):
        run = {}
    env: dict[str, str] = {}
    for item in _strings(run.get("Env")):
        name, eq, value = item.partition("=")
        if eq and name:
            env[name] = value
    labels = run.get("Labels") or {}
    workdir = run.get("WorkingDir") or None
    return ImageDefaults(
        env=env,
        workdir=str(workdir) if workdir and str(workdir).startswith("/") else None,
        user=str(run["User"]) if run.get("User") else None,
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def defaults_config(defaults: ImageDefaults) -> dict[str, Any]:
    """The ``config`` object of an image config document that says ``defaults`` (for export)."""
    doc: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in defaults.env.items()]}
    if defaults.workdir:
        doc["WorkingDir"] = defaults.workdir
    if defaults.user:
        doc["User"] = defaults.user
    if defaults.entrypoint:
        doc["Entrypoint"] = list(defaults.entrypoint)
    if defaults.cmd:
        doc["Cmd"] = list(defaults.cmd)
    if defaults.labels:
        doc["Labels"] = dict(defaults.labels)
    return doc


def user_ids(user: str, passwd: str, group: str) -> tuple[int, int] | None:
    """(uid, gid) an image's ``User`` ("name", "uid", "name:group", "uid:gid") means, looked up in
    the image's /etc/passwd and /etc/group texts; None if a name is not there."""
    name, _, grp = user.partition(":")
    users = {f[0]: (f[2], f[3]) for f in (line.split(":") for line in passwd.splitlines()) if len(f) > 3}
    groups = {f[0]: f[2] for f in (line.split(":") for line in group.splitlines()) if len(f) > 2}
    if name.isdigit():
        uid = int(name)
        gid = next((int(g) for u, g in users.values() if u == name and g.isdigit()), 0)
    elif name in users and all(x.isdigit() for x in users[name]):
        uid, gid = int(users[name][0]), int(users[name][1])
    else:
        return None
    if grp:
        if grp.isdigit():
            gid = int(grp)
        elif grp in groups and groups[grp].isdigit():
            gid = int(groups[grp])
        else:
            return None
    return uid, gid
