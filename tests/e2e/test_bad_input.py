"""Bad input gets a typed 4xx that says what to fix, and nothing is half-created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.sdk import Shell, Shells

from .harness import ServerProcess


@pytest.fixture
def http(server: ServerProcess) -> Any:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert len(err["message"]) > 10
    return dict(err)


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"language": "cobol"}, "invalid_request", "bash, node, python, rust, go"),
        ({"language": "python", "runtime": "vmware"}, "invalid_request", "container"),
        ({"language": "python", "shape": "s-99vcpu"}, "invalid_request", "s-1vcpu-512mb"),
        ({"language": "python", "network": {"mode": "dialup"}}, "invalid_request", "sealed"),
        ({"language": "python", "colour": "red"}, "invalid_request", "colour"),
        ({"runtime": "container"}, "invalid_request", "language"),
        ({"language": "python", "env": {"A": 1}}, "invalid_request", "env"),
        ({"language": "python", "name": "../../etc"}, "invalid_request", "name"),
        ({"language": "python", "idle_timeout_s": -1}, "invalid_request", "idle_timeout_s"),
        ({"language": "python", "idle_timeout_s": "5m"}, "invalid_request", "idle_timeout_s"),
    ],
)
def test_create_with_bad_fields_is_a_400_naming_the_fix(
    http: httpx.Client, body: dict[str, Any], code: str, needle: str
) -> None:
    before = len(http.get("/v1/shells").json()["shells"])
    err = _error(http.post("/v1/shells", json=body), 400, code)
    assert needle in err["message"]
    assert len(http.get("/v1/shells").json()["shells"]) == before


def test_an_idle_timeout_for_a_class_that_cannot_pause_is_refused_and_creates_nothing(
    http: httpx.Client,
) -> None:
    before = len(http.get("/v1/shells").json()["shells"])
    body = {"language": "bash", "runtime": "container", "idle_timeout_s": 60}
    err = _error(http.post("/v1/shells", json=body), 409, "feature_unavailable")
    assert err["details"] == {"field": "idle_timeout_s"}
    assert len(http.get("/v1/shells").json()["shells"]) == before


def test_a_bad_network_policy_is_a_400_and_creates_nothing(http: httpx.Client) -> None:
    before = len(http.get("/v1/shells").json()["shells"])
    for network in (
        {"mode": "internet", "allow": ["https://example.org/path"]},
        {"mode": "internet", "allow": ["198.51.100.0/33"]},
        {"mode": "sealed", "allow": ["example.org"]},
        {"mode": "satellite"},
        {"mode": "internet", "deny": []},
    ):
        _error(
            http.post("/v1/shells", json={"language": "python", "network": network}), 400, "invalid_request"
        )
    assert len(http.get("/v1/shells").json()["shells"]) == before


def test_malformed_and_oversized_bodies_are_rejected(http: httpx.Client) -> None:
    _error(
        http.post("/v1/shells", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "invalid_request",
    )
    _error(http.post("/v1/shells", json=["python"]), 400, "invalid_request")
    _error(http.post("/v1/shells", content=b"[" * 100_000 + b"]" * 100_000), 400, "invalid_request")
    _error(http.post("/v1/shells", content=b" " * (2 << 20)), 413, "payload_too_large")
    assert http.get("/v1/info").status_code == 200


def test_requests_without_a_valid_token_are_401(server: ServerProcess) -> None:
    r = httpx.get(server.url + "/v1/shells")
    _error(r, 401, "unauthenticated")
    r = httpx.get(server.url + "/v1/shells", headers={"Authorization": "Bearer shl_forged"})
    _error(r, 401, "unauthenticated")
    assert httpx.get(server.url + "/v1/info").status_code == 200


def test_unknown_and_deleted_shell_ids_are_404_everywhere(http: httpx.Client, client: Shells) -> None:
    doomed = client.create("bash")
    doomed.kill()
    gone = doomed.id
    for sid in ("sh_doesnotexist0000000000", gone):
        _error(http.get(f"/v1/shells/{sid}"), 404, "shell_not_found")
        _error(http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["true"]}), 404, "shell_not_found")
        _error(http.post(f"/v1/shells/{sid}/actions", json={"capability": "restart"}), 404, "shell_not_found")
        _error(http.get(f"/v1/shells/{sid}/files", params={"path": "/etc/hostname"}), 404, "shell_not_found")
        _error(http.delete(f"/v1/shells/{sid}"), 404, "shell_not_found")


def test_an_unknown_list_filter_is_a_400_even_with_no_shells_to_filter(http: httpx.Client) -> None:
    err = _error(http.get("/v1/shells", params={"state": "sleeping"}), 400, "invalid_request")
    assert "running" in err["message"]
    _error(http.get("/v1/shells", params={"runtime": "vmware"}), 400, "invalid_request")


def test_unknown_capability_and_bad_exec_bodies_are_400(http: httpx.Client, shell: Shell) -> None:
    sid = shell.id
    err = _error(
        http.post(f"/v1/shells/{sid}/actions", json={"capability": "explode"}), 400, "invalid_request"
    )
    assert "wipe_state" in err["message"]
    _error(http.post(f"/v1/shells/{sid}/exec", json={}), 400, "invalid_request")
    _error(http.post(f"/v1/shells/{sid}/exec", json={"cmd": "ls"}), 400, "invalid_request")
    _error(http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["a\u0000b"]}), 400, "invalid_request")
    _error(
        http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["true"], "timeout_s": -1}), 400, "invalid_request"
    )


def test_exec_of_a_missing_binary_is_a_typed_error_not_a_crash(http: httpx.Client, shell: Shell) -> None:
    sid = shell.id
    r = http.post(f"/v1/shells/{sid}/exec", json={"cmd": ["/usr/bin/no-such-program"]})
    err = _error(r, 400, "command_not_found")
    assert "no-such-program" in err["message"]
    r = http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"cmd": ["no-such-program"]})
    _error(r, 400, "command_not_found")
    assert (
        http.post(f"/v1/shells/{sid}/exec", params={"wait": "true"}, json={"cmd": ["true"]}).json()[
            "exit_code"
        ]
        == 0
    )


@pytest.mark.parametrize(
    "path", ["/workspace/../../etc/passwd", "../etc/passwd", "/etc/\u0000passwd", "/" + "a" * 5000, ""]
)
def test_unsafe_paths_are_refused(http: httpx.Client, shell: Shell, path: str) -> None:
    sid = shell.id
    _error(http.get(f"/v1/shells/{sid}/files", params={"path": path}), 400, "invalid_path")
    _error(http.put(f"/v1/shells/{sid}/files", params={"path": path}, content=b"x"), 400, "invalid_path")


def test_a_symlink_pointing_out_of_the_shell_resolves_inside_it(
    shell: Shell,
) -> None:
    shell.commands.run("ln -s / /workspace/out && ln -s /proc/1/root /workspace/pid1root")
    host_hostname = Path("/etc/hostname").read_text(encoding="utf-8")
    assert shell.files.read("/workspace/out/etc/hostname") == b"shells\n"
    assert shell.files.read("/workspace/out/etc/hostname") != host_hostname.encode()
    data = shell.files.read("/workspace/pid1root/etc/hostname")
    assert data == b"shells\n"
    shell.files.write("/workspace/out/tmp/through-link", "inside")
    assert shell.commands.run(["cat", "/tmp/through-link"]).stdout == "inside"
    assert not Path("/tmp/through-link").exists()


def test_missing_files_are_404_and_directories_are_listed(http: httpx.Client, shell: Shell) -> None:
    sid = shell.id
    _error(http.get(f"/v1/shells/{sid}/files", params={"path": "/workspace/nope"}), 404, "file_not_found")
    shell.files.write("b.txt", "2")
    shell.files.write("/workspace/a.txt", "1")
    names = [e.name for e in shell.files.list()]
    assert names == ["a.txt", "b.txt"]
    shell.files.remove("a.txt")
    assert [e.name for e in shell.files.list()] == ["b.txt"]
