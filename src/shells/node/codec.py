"""How the values of the node contracts cross the wire: JSON with tagged types.

Only the value types of ``domain`` and ``runtime`` named in ``WIRE_TYPES`` decode; anything else an
answer or a request names is refused, so no peer can make the other side build an arbitrary object.
A dataclass travels as its ``init`` fields (``__post_init__`` validates it again on arrival), an
enum as its value, and a ``ShellsError`` as its code, message and details, raised again on the
other side as the same class (``domain.errors.ERRORS_BY_CODE``)."""

from __future__ import annotations

import base64
import dataclasses
import enum
import ipaddress
import json
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from ..domain.capabilities import Capability
from ..domain.durable import StoredPart
from ..domain.errors import ERRORS_BY_CODE, RuntimeFailure, ShellsError
from ..domain.execution import (
    ExecExit,
    ExecSpec,
    ExecStarted,
    FileChange,
    FileEntry,
    KeptProcess,
    OutputChunk,
    WindowSize,
)
from ..domain.isolation import Language, Runtime
from ..domain.mounts import BucketCredentials, BucketMount
from ..domain.network import AllowKind, AllowRule, BlockedAttempt, NetworkAccess, NetworkMode, PrivateNetwork
from ..domain.network import Protocol as NetProtocol
from ..domain.nodes import NodeOffer
from ..domain.runtimes import RuntimeOffer
from ..domain.samples import ResourceUsage
from ..domain.secrets import Brokered
from ..domain.shapes import Shape
from ..domain.templates import BuildOutput, BuildStepStarted, ImageInfo, TemplateKind, TemplateMeta
from ..domain.terminal import TerminalSpec
from ..runtime.backend import HostInventory, ShellSpec, VolumeMount
from ..runtime.network.addressing import InstanceRange
from ..runtime.network.dataplane import ShellAddresses
from ..runtime.network.ingress import Exposure
from .ingress import PortsReport

WIRE_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Capability,
        Runtime,
        Language,
        NetworkMode,
        AllowKind,
        NetProtocol,
        TemplateKind,
        WindowSize,
        ExecSpec,
        ExecStarted,
        OutputChunk,
        ExecExit,
        FileEntry,
        FileChange,
        KeptProcess,
        AllowRule,
        NetworkAccess,
        PrivateNetwork,
        BlockedAttempt,
        Shape,
        RuntimeOffer,
        ResourceUsage,
        ImageInfo,
        TemplateMeta,
        BuildStepStarted,
        BuildOutput,
        TerminalSpec,
        ShellSpec,
        HostInventory,
        InstanceRange,
        StoredPart,
        ShellAddresses,
        NodeOffer,
        BucketMount,
        BucketCredentials,
        VolumeMount,
        Exposure,
        PortsReport,
        Brokered,
    )
}
"""Every type a node call's arguments or answers may hold, by name."""

_STREAMS = {"stdin_stream"}
"""Fields that are live streams, not values: they travel as the call's input frames."""

_SCALARS = {
    "ip4": ipaddress.IPv4Address,
    "ip6": ipaddress.IPv6Address,
    "net4": ipaddress.IPv4Network,
    "path": PurePosixPath,
}


def encode(value: Any) -> Any:
    """``value`` as plain JSON data (the inverse of ``decode``)."""
    if isinstance(value, enum.Enum):  # first: a StrEnum is also a str
        return {"$e": type(value).__name__, "v": value.value}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$t": [encode(v) for v in value]}
    if isinstance(value, set | frozenset):
        return {"$s": [encode(v) for v in sorted(value, key=str)]}
    if isinstance(value, dict):
        return {"$d": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, ShellsError):
        return {"$err": value.code, "message": value.message, "details": value.details}
    for tag, kind in _SCALARS.items():
        if isinstance(value, kind):
            return {"$" + tag: str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if WIRE_TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not a node wire type")
        return {
            "$o": name,
            "f": {
                f.name: encode(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init and f.name not in _STREAMS
            },
        }
    raise TypeError(f"{type(value).__name__} does not cross the node boundary")


def decode(data: Any) -> Any:
    """The value ``encode`` made; ValueError for anything that is not one."""
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict) or not data:
        raise ValueError("not a node wire value")
    tag = next(iter(data))
    if tag in {"$e", "$o"}:
        kind = WIRE_TYPES.get(data[tag])
        if kind is None:
            raise ValueError(f"{data[tag]!r} is not a node wire type")
        if tag == "$e":
            return kind(data["v"])
        return kind(**{k: decode(v) for k, v in dict(data["f"]).items()})
    if tag == "$b":
        return base64.b64decode(data[tag], validate=True)
    if tag == "$t":
        return tuple(decode(v) for v in data[tag])
    if tag == "$s":
        return {decode(v) for v in data[tag]}
    if tag == "$d":
        return {decode(k): decode(v) for k, v in data[tag]}
    if tag == "$dt":
        return datetime.fromisoformat(data[tag])
    if tag == "$err":
        return error_from(data)
    if tag[1:] in _SCALARS:
        return _SCALARS[tag[1:]](data[tag])
    raise ValueError(f"unknown node wire tag {tag!r}")


def error_from(data: dict[str, Any]) -> ShellsError:
    cls = ERRORS_BY_CODE.get(str(data["$err"]), RuntimeFailure)
    return cls(str(data["message"]), dict(data.get("details") or {}))


def dumps(value: Any) -> bytes:
    return json.dumps(encode(value), separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    return decode(json.loads(raw))
