"""Templates through the REST API: listing, spec builds (streamed, cached, failing), saving a shell,
deleting with the in-use rule, and every bad input the issue names."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.domain.principal import ADMIN_SCOPES
from shells.runtime.templates.catalog import BASE_ROOTFS, artifact, builtins
from shells.settings import Settings

from .harness import SHELLS, ServerProcess, running_server
from .rest import ShellMaker, error_of, exec_wait, ndjson, rest_client

pytestmark = pytest.mark.usefixtures("built_templates")


@pytest.fixture
def cleanup(api: httpx.Client) -> Iterator[list[str]]:
    """Templates a test makes; deleted (children first) when it ends."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        api.delete(f"/v1/templates/{name}")


def pool_templates(server: ServerProcess) -> list[str]:
    """What is in the server's template directory on the host (staging and trash names included)."""
    return sorted(p.name for p in (server.data_dir / "storage" / "pool" / "templates").iterdir())


def build_shells(server: ServerProcess) -> list[str]:
    return [
        p.name
        for p in (server.data_dir / "storage" / "pool" / "shells").iterdir()
        if p.name.startswith("bld")
    ]


def spec(name: str, *lines: str, parent: str = "python:1") -> str:
    return "\n".join([f'name = "{name}"', f'parent = "{parent}"', *lines]) + "\n"


def test_the_listing_shows_every_builtin_with_versions_and_the_presets(api: httpx.Client) -> None:
    body = api.get("/v1/templates").json()
    assert body["presets"] == {
        "bash": "base:1",
        "node": "node:1",
        "python": "python:1",
        "rust": "rust:1",
        "go": "go:1",
    }
    listed = {t["name"]: t for t in body["templates"]}
    assert set(builtins()) <= set(listed)
    python = listed["python:1"]
    assert (python["kind"], python["parent"], python["status"]) == ("builtin", "base:1", "ready")
    assert python["versions"]["python"].startswith("3.13.") and python["versions"]["debian"].startswith("13")
    assert python["size_bytes"] > 100_000_000 and len(python["content_hash"]) == 64
    assert python["env"]["PIP_BREAK_SYSTEM_PACKAGES"] == "1" and python["workdir"] == "/workspace"
    assert listed["rust:1"]["versions"]["rustc"].startswith("1.85")
    assert listed["go:1"]["versions"]["go"].startswith("1.24")
    assert listed["node:1"]["versions"]["node"].startswith("20.")
    assert api.get("/v1/info").json()["runtimes"]["container"]["languages"] == [
        "bash", "go", "node", "python", "rust",
    ]  # fmt: skip


def test_get_resolves_a_bare_name_and_a_missing_one_is_a_404(api: httpx.Client) -> None:
    assert api.get("/v1/templates/python:1").json()["name"] == "python:1"
    assert api.get("/v1/templates/python").json()["name"] == "python:1"
    error_of(api.get("/v1/templates/nope:1"), 404, "template_not_found")
    error_of(api.get("/v1/templates/nope"), 404, "template_not_found")
    error_of(api.get("/v1/templates/Bad Name:1"), 400, "invalid_template_name")


BUILD_LINES = (
    'workdir = "/srv/app"',
    'commands = ["echo built-by-spec > /etc/spec-marker", "jq --version > jq.txt",',
    '            "echo seed > /workspace/s"]',
    "[apt]",
    'packages = ["jq"]',
    "[[files]]",
    'path = "/usr/local/bin/greet"',
    'content = "#!/bin/sh\\necho hello from the template\\n"',
    'mode = "755"',
    "[env]",
    'APP_ENV = "test"',
    "[versions]",
    "jq = \"jq --version | sed 's/^jq-//'\"",
)


def test_a_spec_build_streams_its_steps_and_shells_start_from_the_result(
    api: httpx.Client, make_rest_shell: ShellMaker, cleanup: list[str], server: ServerProcess
) -> None:
    cleanup.append("webapp:1")
    events = ndjson(api, "/v1/templates/build", {"spec": spec("webapp:1", *BUILD_LINES)})
    steps = [e for e in events if e["type"] == "step"]
    assert [s["name"] for s in steps] == [
        "start a build shell from python:1",
        "apt install jq",
        "write 1 file",
        "echo built-by-spec > /etc/spec-marker",
        "jq --version > jq.txt",
        "echo seed > /workspace/s",
        "record versions: jq",
        "save the template webapp:1",
    ]
    assert [s["index"] for s in steps] == list(range(1, 9)) and {s["total"] for s in steps} == {8}
    assert "jq" in "".join(e["data"] for e in events if e["type"] == "output")  # apt's own output
    done = events[-1]
    assert done["type"] == "done" and done["seconds"] > 0
    tpl = done["template"]
    assert (tpl["name"], tpl["kind"], tpl["parent"], tpl["status"]) == (
        "webapp:1",
        "spec",
        "python:1",
        "ready",
    )
    assert tpl["versions"]["jq"].startswith("1.") and tpl["versions"]["python"].startswith("3.13")
    assert tpl["env"]["APP_ENV"] == "test" and tpl["env"]["PIP_BREAK_SYSTEM_PACKAGES"] == "1"
    assert tpl["workdir"] == "/srv/app"
    assert build_shells(server) == []

    sh = make_rest_shell(language="python", template="webapp:1", env={"MINE": "yes"})
    out = exec_wait(
        api, sh["id"], 'pwd; cat /etc/spec-marker /workspace/s; greet; echo "$APP_ENV $MINE"; cat jq.txt'
    )
    lines = out["stdout"].splitlines()
    assert lines[:5] == ["/srv/app", "built-by-spec", "seed", "hello from the template", "test yes"], out
    assert out["exit_code"] == 0 and lines[5].startswith("jq-1.")

    again = ndjson(api, "/v1/templates/build", {"spec": spec("webapp:1", *BUILD_LINES)})
    assert [e["type"] for e in again] == ["cached"] and again[0]["template"]["content_hash"] == tpl[
        "content_hash"
    ]
    waited = api.post(
        "/v1/templates/build", params={"wait": "true"}, json={"spec": spec("webapp:1", *BUILD_LINES)}
    )
    assert waited.status_code == 200 and waited.json()["content_hash"] == tpl["content_hash"]
    changed = spec("webapp:1", *BUILD_LINES[:-1], "jq = 'jq --version'")
    clash = ndjson(
        api, "/v1/templates/build", {"spec": changed}
    )  # the caller's own name: checked in the stream
    assert [e["type"] for e in clash] == ["error"] and clash[0]["error"]["code"] == "template_exists"


def test_a_failing_step_names_the_step_and_its_output_and_registers_nothing(
    api: httpx.Client, server: ServerProcess
) -> None:
    failing = spec("broken:1", 'commands = ["echo preparing", "echo boom >&2; exit 7", "echo never"]')
    events = ndjson(api, "/v1/templates/build", {"spec": failing})
    assert [e["name"] for e in events if e["type"] == "step"][-1] == "echo boom >&2; exit 7"
    err = events[-1]
    assert err["type"] == "error" and err["error"]["code"] == "template_build_failed"
    details = err["error"]["details"]
    assert details["step"] == {"index": 3, "total": 5, "name": "echo boom >&2; exit 7"}
    assert details["exit_code"] == 7 and "boom" in details["output"]
    assert "exit code 7" in err["error"]["message"]
    error_of(api.get("/v1/templates/broken:1"), 404, "template_not_found")
    assert "broken:1" not in pool_templates(server) and not any("broken" in n for n in pool_templates(server))
    assert build_shells(server) == []
    waited = api.post("/v1/templates/build", params={"wait": "true"}, json={"spec": failing})
    assert error_of(waited, 422, "template_build_failed")["details"]["exit_code"] == 7


def test_a_package_that_does_not_exist_fails_with_apts_reason(
    api: httpx.Client, server: ServerProcess
) -> None:
    body = {"spec": spec("nopkg:1", "[apt]", 'packages = ["shells-no-such-package"]')}
    err = error_of(
        api.post("/v1/templates/build", params={"wait": "true"}, json=body), 422, "template_build_failed"
    )
    assert err["details"]["step"]["name"] == "apt install shells-no-such-package"
    assert "Unable to locate package shells-no-such-package" in err["details"]["output"]
    assert not any("nopkg" in n for n in pool_templates(server)) and build_shells(server) == []


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        ({"spec": spec("a:1", 'colour = "red"')}, 400, "invalid_template_spec", "colour"),
        ({"spec": spec("a:1", "[apt]", 'pakages = ["jq"]')}, 400, "invalid_template_spec", "apt.pakages"),
        ({"spec": "name = [oops"}, 400, "invalid_template_spec", "TOML"),
        ({"spec": spec("a:1", parent="nosuch:1")}, 404, "template_not_found", "nosuch:1"),
        ({"spec": spec("a:1", parent="nosuch")}, 404, "template_not_found", "nosuch"),
        ({"spec": spec("webapp")}, 400, "invalid_template_name", "no tag"),
        ({"spec": spec("Web App:1")}, 400, "invalid_template_name", "lowercase"),
        ({"spec": spec("python:1")}, 409, "template_exists", "python:1"),
        ({"spec": spec("a:1"), "builtin": "go:1"}, 400, "invalid_request", "exactly one"),
        ({"builtin": "cobol:1"}, 400, "invalid_request", "devbox:1"),
        ({"spec": 42}, 400, "invalid_request", "TOML"),
        ({}, 400, "invalid_request", "exactly one"),
    ],
)
def test_bad_build_requests_are_typed_4xx_before_anything_streams(
    api: httpx.Client, body: dict[str, Any], status: int, code: str, needle: str
) -> None:
    assert needle in error_of(api.post("/v1/templates/build", json=body), status, code)["message"]


WHEEL = """
import base64, hashlib, zipfile
files = {
    "shellsdemo.py": "VALUE = 'from a wheel'\\n",
    "shellsdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: shellsdemo\\nVersion: 1.0\\n",
    "shellsdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
def digest(text):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
record = "".join(f"{p},{digest(t)},{len(t.encode())}\\n" for p, t in files.items())
files["shellsdemo-1.0.dist-info/RECORD"] = record + "shellsdemo-1.0.dist-info/RECORD,,\\n"
with zipfile.ZipFile("/tmp/shellsdemo-1.0-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
print("wheel ready")
"""
DEB = (
    "mkdir -p /tmp/deb/DEBIAN /tmp/deb/usr/local/bin && "
    "printf 'Package: shells-demo\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@example.org>\\n"
    "Description: demo\\n' > /tmp/deb/DEBIAN/control && "
    "printf '#!/bin/sh\\necho demo-installed\\n' > /tmp/deb/usr/local/bin/shells-demo && "
    "chmod 755 /tmp/deb/usr/local/bin/shells-demo && "
    "dpkg-deb --build /tmp/deb /tmp/shells-demo.deb >/dev/null && dpkg -i /tmp/shells-demo.deb >/dev/null && "
    "python3 -m pip install -q --no-index /tmp/shellsdemo-1.0-py3-none-any.whl"
)


def test_a_saved_shell_relaunches_with_its_files_and_installed_packages(
    api: httpx.Client, make_rest_shell: ShellMaker, cleanup: list[str]
) -> None:
    src = make_rest_shell(language="python", env={"SAVED_ENV": "kept"})
    assert (
        api.post(f"/v1/shells/{src['id']}/run", params={"wait": "true"}, json={"code": WHEEL}).json()[
            "stdout"
        ]
        == "wheel ready\n"
    )
    setup = exec_wait(
        api, src["id"], DEB + " && echo system > /etc/marker && echo mine > /workspace/data.txt"
    )
    assert setup["exit_code"] == 0, setup
    cleanup += ["myenv:1", "myenv:2"]
    r = api.post(
        "/v1/templates", json={"from_shell": src["id"], "name": "myenv:1", "include_workspace": True}
    )
    assert r.status_code == 201, r.text
    saved = r.json()
    assert (saved["kind"], saved["parent"], saved["status"]) == ("saved", "python:1", "ready")
    assert saved["env"]["SAVED_ENV"] == "kept" and saved["versions"]["python"].startswith("3.13")
    assert (
        exec_wait(api, src["id"], "echo still running")["stdout"] == "still running\n"
    )  # resumed after the capture

    again = make_rest_shell(language="python", template="myenv:1")
    check = (
        "cat /etc/marker /workspace/data.txt; shells-demo; "
        "python3 -c 'import shellsdemo as d; print(d.VALUE)'; "
        "dpkg -s shells-demo | grep Status; echo $SAVED_ENV"
    )
    out = exec_wait(api, again["id"], check)
    assert out["stdout"].splitlines() == [
        "system", "mine", "demo-installed", "from a wheel", "Status: install ok installed", "kept",
    ], out  # fmt: skip

    r = api.post("/v1/templates", json={"from_shell": src["id"], "name": "myenv:2"})
    assert r.status_code == 201, r.text
    bare = make_rest_shell(language="python", template="myenv:2")
    out = exec_wait(api, bare["id"], "cat /etc/marker; ls -A /workspace | wc -l")
    assert out["stdout"] == "system\n0\n"
    assert make_rest_shell(language="python", template="myenv")["template"] == "myenv:2"  # the highest tag


def other_tenant_token(api: httpx.Client) -> str:
    """A tenant admin's token of a new tenant, minted through the REST API by the platform admin."""
    tenant = f"other-{secrets.token_hex(4)}"
    assert api.post("/v1/tenants", json={"name": tenant}).status_code == 201
    scopes = sorted(ADMIN_SCOPES - {"platform.admin"})
    r = api.post("/v1/tokens", json={"tenant": tenant, "principal": "mallory", "scopes": scopes})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_saving_needs_a_running_shell_of_ones_own_and_a_free_legal_name(
    api: httpx.Client, make_rest_shell: ShellMaker, server: ServerProcess, cleanup: list[str]
) -> None:
    sh = make_rest_shell(language="python")
    save = {"from_shell": sh["id"], "name": "mine:1"}
    error_of(api.post("/v1/templates", json={**save, "name": "mine"}), 400, "invalid_template_name")
    error_of(api.post("/v1/templates", json={**save, "name": "Mine!:1"}), 400, "invalid_template_name")
    error_of(api.post("/v1/templates", json={**save, "name": "python:1"}), 409, "template_exists")
    error_of(api.post("/v1/templates", json={**save, "colour": "red"}), 400, "invalid_request")
    error_of(api.post("/v1/templates", json={**save, "include_workspace": "yes"}), 400, "invalid_request")
    error_of(api.post("/v1/templates", json={"name": "mine:1"}), 400, "invalid_request")
    error_of(
        api.post("/v1/templates", json={**save, "from_shell": "sh_nosuch000000000000"}),
        404,
        "shell_not_found",
    )
    with rest_client(server, other_tenant_token(api)) as mallory:
        error_of(mallory.post("/v1/templates", json=save), 404, "shell_not_found")
        cleanup.append("mine:1")
        assert api.post("/v1/templates", json=save).status_code == 201
        assert "mine:1" not in {t["name"] for t in mallory.get("/v1/templates").json()["templates"]}
        error_of(mallory.get("/v1/templates/mine:1"), 404, "template_not_found")
        error_of(
            mallory.post("/v1/shells", json={"language": "python", "template": "mine:1"}),
            404,
            "template_not_found",
        )
        error_of(mallory.delete("/v1/templates/python:1"), 403, "permission_denied")
    error_of(api.post("/v1/templates", json={**save, "name": "mine:1"}), 409, "template_exists")
    api.post(f"/v1/shells/{sh['id']}/actions", json={"capability": "stop"}).raise_for_status()
    err = error_of(api.post("/v1/templates", json={**save, "name": "mine:2"}), 409, "invalid_state")
    assert "running" in err["message"]
    error_of(api.get("/v1/templates/mine:2"), 404, "template_not_found")


def test_a_template_in_use_cannot_be_deleted_until_its_users_are_gone(
    api: httpx.Client, make_rest_shell: ShellMaker, server: ServerProcess
) -> None:
    sh = make_rest_shell(language="python")
    assert api.post("/v1/templates", json={"from_shell": sh["id"], "name": "layer:1"}).status_code == 201
    child = spec("layer-child:1", 'commands = ["touch /etc/child"]', parent="layer:1")
    assert api.post("/v1/templates/build", params={"wait": "true"}, json={"spec": child}).status_code == 200
    user = make_rest_shell(language="python", template="layer:1")
    err = error_of(api.delete("/v1/templates/layer:1"), 409, "template_in_use")
    assert err["details"]["used_by"] == f"shell {user['id']}" and user["id"] in err["message"]
    api.delete(f"/v1/shells/{user['id']}")
    err = error_of(api.delete("/v1/templates/layer:1"), 409, "template_in_use")
    assert err["details"]["used_by"] == "template layer-child:1"
    assert api.delete("/v1/templates/layer-child:1").status_code == 204
    assert api.delete("/v1/templates/layer:1").status_code == 204
    error_of(api.get("/v1/templates/layer:1"), 404, "template_not_found")
    error_of(api.delete("/v1/templates/layer:1"), 404, "template_not_found")
    error_of(api.delete("/v1/templates/layer"), 400, "invalid_template_name")
    assert not any(n.startswith(("layer", ".layer")) for n in pool_templates(server))
    error_of(
        api.post("/v1/shells", json={"language": "python", "template": "layer:1"}), 404, "template_not_found"
    )


def test_a_builtin_can_be_deleted_and_comes_back_from_the_host_cache(
    api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    assert api.delete("/v1/templates/go:1").status_code == 204
    listed = {t["name"]: t for t in api.get("/v1/templates").json()["templates"]}
    assert listed["go:1"]["status"] == "not_built" and listed["go:1"]["versions"] == {}
    sh = make_rest_shell(language="go")  # this host has go:1 cached, so creation imports it in seconds
    assert sh["template"] == "go:1"
    assert api.get("/v1/templates/go:1").json()["status"] == "ready"
    events = ndjson(api, "/v1/templates/build", {"builtin": "go:1"})
    assert [e["type"] for e in events] == ["cached"]


def test_prepare_builds_only_the_default_and_other_builtins_are_refused_until_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make up`` on a host whose cache holds only the debootstrapped base: ``shells prepare`` builds
    python:1 in a build shell (with DNS served before any server runs) and names the rest; a shell of
    a built-in that would need a build is refused at once, saying how to build it."""
    cache = Path("/var/tmp") / f"shells-cache-{secrets.token_hex(4)}"
    cache.mkdir()
    data = tmp_path / "fresh"
    try:
        base = Settings.from_env().cache_dir / BASE_ROOTFS.tarball_name()
        os.link(base, cache / base.name)
        monkeypatch.setenv("SHELLS_CACHE_DIR", str(cache))
        argv = [*SHELLS, "prepare", "--data-dir", str(data)]
        prepare = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
        assert prepare.returncode == 0, prepare.stderr
        assert "templates ready: base:1, python:1" in prepare.stdout
        assert "preparing the default template python:1" in prepare.stderr
        assert "apt install python3-pip python3-venv" in prepare.stderr
        assert "builds one on first use" in prepare.stderr and "rust:1 ~" in prepare.stderr
        python = artifact(cache, builtins()["python:1"])
        assert python.exists() and python.with_name(python.name + ".json").exists()  # for other instances
        with running_server(data, warm_pool=0) as srv, rest_client(srv) as fresh:
            err = error_of(fresh.post("/v1/shells", json={"language": "rust"}), 409, "template_not_built")
            assert "shells template build rust:1" in err["message"]
            assert err["details"]["template"] == "rust:1" and err["details"]["estimated_seconds"] > 0
            assert fresh.get("/v1/shells").json()["shells"] == []
            sh = fresh.post("/v1/shells", json={"language": "python"})
            assert sh.status_code == 201 and sh.json()["template"] == "python:1"
    finally:  # `shells prepare` set the host up for this instance even if something above failed
        subprocess.run([*SHELLS, "purge", "--data-dir", str(data), "--yes"], check=False, capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
