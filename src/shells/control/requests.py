"""Door-neutral request objects, parsed from plain JSON-like values with typed errors."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..domain.errors import InvalidRequest
from ..domain.execution import DEFAULT_EXEC_TIMEOUT_S, ExecSpec, check_env
from ..domain.isolation import DEFAULT_RUNTIME, Language, Runtime, parse_enum
from ..domain.mounts import BucketMount, VolumeAttachment
from ..domain.network import NetworkAccess, NetworkMode
from ..domain.secrets import check_secret_name
from ..domain.shapes import DEFAULT_SHAPE, get_shape
from ..domain.sync import SyncTarget, parse_sync

MAX_NAME = 63
SEALED_HAS_NO_NETWORK = (
    "A sealed shell has no network at all, so it cannot be on a private network; use mode "
    "'localhost' (private networks without internet) or 'internet'."
)
MAX_LABELS = 64


def _str_map(value: object, field_name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest(
            f"'{field_name}' must be an object of string keys to string values.", {"field": field_name}
        )
    return dict(value)


def _env(value: object) -> dict[str, str]:
    env = _str_map(value, "env")
    check_env(env)
    return env


def reject_unknown(body: Mapping[str, Any], known: set[str]) -> None:
    """InvalidRequest naming the fields of ``body`` outside ``known``, and the known ones."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}.",
            {"fields": unknown},
        )


def _opt_str(value: object, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{field_name}' must be a non-empty string.", {"field": field_name})
    return value


def _opt_bool(value: object, field_name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequest(f"'{field_name}' must be true or false.", {"field": field_name})


@dataclass(frozen=True)
class CreateShellRequest:
    language: Language
    runtime: Runtime = DEFAULT_RUNTIME
    network: NetworkAccess = field(default_factory=NetworkAccess)
    shape: str = DEFAULT_SHAPE
    template: str | None = None
    snapshot: str | None = None
    name: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    networks: tuple[str, ...] = ()
    idle_timeout_s: int | None = None
    """None: the instance's default for classes that can pause; 0: never pause on idle."""
    secrets: tuple[str, ...] = ()
    """Names of the tenant's secrets the shell gets placeholders for (docs/secrets.md)."""
    timeout_s: int | None = None
    """The hard time-to-live from now (None: none); ``on_timeout`` says what it does."""
    on_timeout: str = "kill"
    auto_resume: bool | None = None
    """None: on for classes that can resume, off for the others."""
    region: str | None = None
    """Where the shell runs (None: the instance's own region); placement checks it exists."""
    sync: SyncTarget | None = None
    """Where /workspace is mirrored (docs/storage.md); None: nowhere."""
    buckets: tuple[BucketMount, ...] = ()
    """Users' buckets mounted from the host (docs/storage.md)."""
    volumes: tuple[VolumeAttachment, ...] = ()

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> CreateShellRequest:
        known = {
            "language",
            "runtime",
            "network",
            "networks",
            "shape",
            "template",
            "snapshot",
            "name",
            "env",
            "labels",
            "idle_timeout_s",
            "secrets",
            "timeout_s",
            "on_timeout",
            "auto_resume",
            "region",
            "sync",
            "mounts",
            "volumes",
        }
        reject_unknown(body, known)
        from .mount_requests import parse_storage  # it builds on this module's helpers

        buckets, volumes = parse_storage(body.get("mounts"), body.get("volumes"))
        if "language" not in body and "snapshot" not in body:
            raise InvalidRequest(
                "'language' is required (bash, node, python, rust or go).", {"field": "language"}
            )
        policy = parse_network_policy(body.get("network"))
        networks = body.get("networks") or []
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise InvalidRequest("'networks' must be a list of private network names.", {"field": "networks"})
        if networks and policy.mode is NetworkMode.SEALED:
            raise InvalidRequest(SEALED_HAS_NO_NETWORK, {"field": "networks"})
        shape = body.get("shape") or DEFAULT_SHAPE
        if not isinstance(shape, str):
            raise InvalidRequest("'shape' must be a string such as s-1vcpu-512mb.", {"field": "shape"})
        get_shape(shape)
        name = _opt_str(body.get("name"), "name")
        if name is not None and (len(name) > MAX_NAME or not all(c.isalnum() or c in "-_." for c in name)):
            raise InvalidRequest(
                f"'name' must be at most {MAX_NAME} letters, digits, '-', '_' or '.'.", {"field": "name"}
            )
        labels = _str_map(body.get("labels"), "labels")
        if len(labels) > MAX_LABELS:
            raise InvalidRequest(f"At most {MAX_LABELS} labels are allowed.", {"field": "labels"})
        language = parse_enum(Language, body.get("language", "bash"), "language")
        return cls(
            language=language,
            runtime=parse_enum(Runtime, body.get("runtime", DEFAULT_RUNTIME.value), "runtime"),
            network=policy,
            shape=shape,
            template=_opt_str(body.get("template"), "template"),
            snapshot=_opt_str(body.get("snapshot"), "snapshot"),
            name=name,
            env=_env(body.get("env")),
            labels=labels,
            networks=tuple(dict.fromkeys(networks)),
            idle_timeout_s=parse_idle_timeout(body.get("idle_timeout_s")),
            secrets=parse_secret_names(body.get("secrets"), policy),
            timeout_s=None if body.get("timeout_s") is None else parse_ttl(body["timeout_s"]),
            on_timeout=parse_on_timeout(body.get("on_timeout", "kill")),
            auto_resume=_opt_bool(body.get("auto_resume"), "auto_resume"),
            region=_opt_str(body.get("region"), "region"),
            sync=parse_sync(body.get("sync")),
            buckets=buckets,
            volumes=volumes,
        )


def parse_secret_names(value: object, policy: NetworkAccess) -> tuple[str, ...]:
    """A list of secret names; only for shells in mode ``internet`` (the values go out over HTTPS)."""
    if value is None or value == []:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("'secrets' must be a list of secret names.", {"field": "secrets"})
    names = tuple(dict.fromkeys(check_secret_name(v, "secrets") for v in value))
    if policy.mode is not NetworkMode.INTERNET:
        raise InvalidRequest(
            "'secrets' need network mode 'internet': they are used on the shell's HTTPS requests.",
            {"field": "secrets"},
        )
    return names


MAX_IDLE_TIMEOUT_S = 7 * 24 * 3600
MAX_FORKS = 16


def parse_fork_count(params: Mapping[str, Any]) -> int:
    """The ``count`` of a fork action: 1 (the default) to MAX_FORKS."""
    reject_unknown(params, {"count"})
    count = params.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_FORKS:
        raise InvalidRequest(
            f"'count' must be a whole number of forks from 1 to {MAX_FORKS}.", {"field": "count"}
        )
    return count


def parse_log_bytes(params: Mapping[str, Any], most: int) -> int:
    """The ``max_bytes`` of a logs action: a whole number, clamped to 1..``most``."""
    value = params.get("max_bytes", most)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest("'max_bytes' must be a whole number of bytes.", {"field": "max_bytes"})
    return max(1, min(value, most))


def parse_idle_timeout(value: object) -> int | None:
    """Whole seconds from 0 (never) to a week, or None for the instance's default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_IDLE_TIMEOUT_S:
        raise InvalidRequest(
            f"'idle_timeout_s' must be whole seconds from 0 (never pause on idle) to {MAX_IDLE_TIMEOUT_S}.",
            {"field": "idle_timeout_s"},
        )
    return value


MAX_SHELL_TTL_S = 30 * 24 * 3600
ON_TIMEOUT = ("kill", "pause")


def parse_ttl(value: object, field_name: str = "timeout_s") -> int:
    """A time-to-live: whole seconds from 0 (end now) to MAX_SHELL_TTL_S."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SHELL_TTL_S:
        raise InvalidRequest(
            f"'{field_name}' must be whole seconds from 0 (end now) to {MAX_SHELL_TTL_S}.",
            {"field": field_name},
        )
    return value


def parse_on_timeout(value: object) -> str:
    if value not in ON_TIMEOUT:
        raise InvalidRequest(
            f"'on_timeout' must be one of: {', '.join(ON_TIMEOUT)}.", {"field": "on_timeout"}
        )
    return str(value)


def parse_network_policy(value: object) -> NetworkAccess:
    """``"internet"`` or ``{"mode": "internet", "allow": ["example.org:443", ...]}``; absent → sealed."""
    if value is None:
        return NetworkAccess()
    if isinstance(value, str):
        return NetworkAccess(parse_enum(NetworkMode, value, "network.mode"))
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            '\'network\' must be a mode or an object like {"mode": "sealed"}.', {"field": "network"}
        )
    unknown = sorted(set(value) - {"mode", "allow"})
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) in 'network': {', '.join(unknown)}. Known fields: allow, mode.",
            {"field": "network", "fields": unknown},
        )
    allow = value.get("allow") or []
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise InvalidRequest("'network.allow' must be a list of strings.", {"field": "network.allow"})
    mode = parse_enum(NetworkMode, value.get("mode", NetworkMode.SEALED.value), "network.mode")
    if allow and mode is not NetworkMode.INTERNET:
        raise InvalidRequest("'network.allow' only applies to mode 'internet'.", {"field": "network.allow"})
    return NetworkAccess(mode, tuple(allow))


@dataclass(frozen=True)
class StartProcess:
    """``POST /v1/shells/{id}/processes``: a command that outlives the request (``control.processes``)."""

    spec: ExecSpec
    tag: str | None
    stdin: bool
    """Keep its stdin open for later writes (``…/stdin``) until ``…/stdin/close``."""


MAX_TAG = 128


def parse_process(body: Mapping[str, Any]) -> StartProcess:
    """An exec body (``cmd`` or ``command``, env, cwd, timeout_s) plus ``user``, ``tag`` and
    ``stdin`` (true: stdin stays open)."""
    reject_unknown(body, {"cmd", "command", "env", "cwd", "timeout_s", "user", "tag", "stdin"})
    spec = parse_exec({k: v for k, v in body.items() if k not in ("user", "tag", "stdin")})
    user, tag, stdin = body.get("user"), body.get("tag"), body.get("stdin", False)
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("'user' must be the name of a user of the shell.", {"field": "user"})
    if tag is not None and (not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG):
        raise InvalidRequest(f"'tag' must be a string of 1 to {MAX_TAG} characters.", {"field": "tag"})
    if not isinstance(stdin, bool):
        raise InvalidRequest("'stdin' must be true (keep it open) or false.", {"field": "stdin"})
    return StartProcess(replace(spec, user=user or None), tag, stdin)


def parse_signal(body: Mapping[str, Any]) -> int:
    """``{"signal": "TERM"}`` (TERM, KILL, INT, HUP or QUIT, with or without SIG)."""
    reject_unknown(body, {"signal"})
    name = body.get("signal", "TERM")
    number = SIGNALS.get(name.upper().removeprefix("SIG")) if isinstance(name, str) else None
    if number is None:
        raise InvalidRequest(f"'signal' must be one of: {', '.join(SIGNALS)}.", {"field": "signal"})
    return number


SIGNALS = {"TERM": 15, "KILL": 9, "INT": 2, "HUP": 1, "QUIT": 3}


def parse_exec(body: Mapping[str, Any]) -> ExecSpec:
    """Parse ``{"cmd": [...]} | {"command": "..."}`` plus env, cwd, stdin, timeout_s."""
    known = {"cmd", "command", "env", "cwd", "stdin", "stdin_b64", "timeout_s"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s) {', '.join(unknown)}. Known fields: {', '.join(sorted(known))}."
        )
    cmd = body.get("cmd")
    if cmd is not None and (not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd)):
        raise InvalidRequest('\'cmd\' must be a list of strings, e.g. ["python3", "-c", "print(1)"].')
    command = body.get("command")
    if command is not None and not isinstance(command, str):
        raise InvalidRequest("'command' must be a string run by /bin/sh -c.")
    stdin = b""
    if isinstance(body.get("stdin"), str):
        stdin = body["stdin"].encode()
    elif isinstance(body.get("stdin_b64"), str):
        try:
            stdin = base64.b64decode(body["stdin_b64"], validate=True)
        except ValueError:
            raise InvalidRequest("'stdin_b64' is not valid base64.") from None
    elif body.get("stdin") is not None:
        raise InvalidRequest("'stdin' must be a string (use 'stdin_b64' for bytes).")
    timeout = body.get("timeout_s", DEFAULT_EXEC_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidRequest("'timeout_s' must be a number of seconds.")
    cwd = body.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise InvalidRequest("'cwd' must be a string (default: the template's working directory).")
    return ExecSpec(
        argv=tuple(cmd) if cmd is not None else None,
        command=command,
        env=_str_map(body.get("env"), "env"),
        cwd=cwd,
        stdin=stdin,
        timeout_s=float(timeout),
    )
