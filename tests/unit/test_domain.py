"""Pure rules: the state machine, path validation, request parsing, the bundle, error mapping."""

from __future__ import annotations

import pytest

from shells.api.errors import status_for
from shells.control.requests import CreateShellRequest, parse_exec
from shells.domain import errors as e
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkMode
from shells.domain.paths import normalize_shell_path
from shells.domain.shapes import SHAPES, get_shape
from shells.domain.states import ShellState, can_transition, transition
from shells.runtime.container.bundle import BundlePaths, build_config


def test_deleted_is_terminal_and_lost_can_only_be_recovered_or_deleted() -> None:
    assert not any(can_transition(ShellState.DELETED, s) for s in ShellState)
    recovered = [ShellState.PAUSED, ShellState.STOPPED]  # started again on another node
    assert [s for s in ShellState if can_transition(ShellState.LOST, s)] == [*recovered, ShellState.DELETED]


def test_an_illegal_transition_raises_invalid_state_with_both_states() -> None:
    with pytest.raises(e.InvalidState) as err:
        transition(ShellState.STOPPED, ShellState.PAUSED)
    assert err.value.details == {"state": "stopped", "target": "paused"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("main.py", "/workspace/main.py"),
        ("/etc//hosts", "/etc/hosts"),
        ("./a/./b", "/workspace/a/b"),
        ("/", "/"),
    ],
)
def test_paths_are_normalised_inside_the_shell(raw: str, clean: str) -> None:
    assert normalize_shell_path(raw) == clean


@pytest.mark.parametrize("raw", ["", "../x", "/workspace/../etc", "a\0b", "/" + "x" * 4100])
def test_unsafe_paths_are_invalid_path_errors(raw: str) -> None:
    with pytest.raises(e.InvalidPath):
        normalize_shell_path(raw)


def test_create_defaults_match_the_documented_contract() -> None:
    req = CreateShellRequest.parse({"language": "python"})
    assert req.language is Language.PYTHON and req.runtime is Runtime.CONTAINER
    assert req.network.mode is NetworkMode.SEALED and req.shape == "s-1vcpu-512mb"


def test_allowlists_only_make_sense_for_internet_mode() -> None:
    with pytest.raises(e.InvalidRequest):
        CreateShellRequest.parse({"language": "go", "network": {"mode": "sealed", "allow": ["pypi.org"]}})
    req = CreateShellRequest.parse({"language": "go", "network": {"mode": "internet", "allow": ["pypi.org"]}})
    assert req.network.allow == ("pypi.org",)


def test_exec_needs_exactly_one_of_cmd_and_command() -> None:
    with pytest.raises(e.InvalidRequest):
        parse_exec({})
    with pytest.raises(e.InvalidRequest):
        parse_exec({"cmd": ["ls"], "command": "ls"})
    assert parse_exec({"command": "ls"}).effective_argv == ("/bin/sh", "-c", "ls")


def test_every_shape_resolves_and_unknown_shapes_list_the_choices() -> None:
    for name in SHAPES:
        assert get_shape(name).name == name
    with pytest.raises(e.InvalidRequest, match="s-8vcpu-16gb"):
        get_shape("huge")


def test_the_bundle_isolates_every_namespace_and_limits_every_resource() -> None:
    paths = BundlePaths("/r", "/w", "/g", "/n")
    cfg = build_config(
        paths=paths,
        shape=get_shape("s-2vcpu-2gb"),
        agent_argv=["/.shells/lib/ld.so", "/.shells/bin/python3", "--listen-fd", "3"],
        uid_base=2**20,
        cgroup_path="/x/y",
        seccomp_bpf_b64="AAAA",
    )
    kinds = {ns["type"] for ns in cfg["linux"]["namespaces"]}
    assert kinds == {"pid", "ipc", "uts", "mount", "cgroup", "user", "network"}
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 2**20, "size": 65536}]
    res = cfg["linux"]["resources"]
    assert res["memory"]["limit"] == res["memory"]["swap"] == 2048 * 1024 * 1024
    assert res["cpu"]["quota"] == 2 * res["cpu"]["period"]
    assert cfg["process"]["noNewPrivileges"] is True
    assert "CAP_SYS_ADMIN" not in cfg["process"]["capabilities"]["bounding"]
    assert cfg["annotations"]["run.oci.seccomp_bpf_data"] == "AAAA"
    sys_mount = next(m for m in cfg["mounts"] if m["destination"] == "/sys")
    assert sys_mount["type"] == "tmpfs" and "ro" in sys_mount["options"]
    # The agent gets its listening socket as fd 3; nothing of the host's agent side is mounted, and
    # its runtime is one read-only mount at /.shells.
    assert cfg["process"]["args"][-2:] == ["--listen-fd", "3"]
    agent_mounts = [m for m in cfg["mounts"] if m["destination"].startswith("/.shells")]
    assert [(m["destination"], m["source"]) for m in agent_mounts] == [("/.shells", "/g")]
    assert {"ro", "nosuid", "nodev"} <= set(agent_mounts[0]["options"])


def test_every_error_code_maps_to_one_class_and_a_4xx_or_5xx() -> None:
    assert e.ERRORS_BY_CODE["shell_not_found"] is e.ShellNotFound
    assert status_for(e.ShellNotFound("x")) == 404
    assert status_for(e.InvalidPath("x")) == 400
    assert status_for(e.ActionNotSupported("x")) == 409
    assert status_for(e.Unauthenticated("x")) == 401
    codes = [cls.code for cls in e.ERRORS_BY_CODE.values()]
    assert len(codes) == len(set(codes))
