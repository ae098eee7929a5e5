"""Templates built from a Dockerfile and its context (uploaded as a tar) on an imported image: every
supported instruction, a step cache that rebuilds only what changed, a failing step named by its
line, an unsupported instruction refused before anything runs."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx

from tests.support.oci_registry import Registry

from .harness import ServerProcess
from .oci import CREDS, api, import_image, make, oci_server, registry, run
from .rest import ShellMaker, error_of

__all__ = ["api", "make", "oci_server", "registry"]  # fixtures

DOCKERFILE = """\
# a comment
FROM busybox:1
ARG GREET=hi
ENV APP_MODE=prod \\
    SAID=$GREET
WORKDIR /srv/app
COPY app/ ./
COPY notes.txt /etc/notes.txt
USER app
RUN echo "built by $(id -u) in $(pwd) saying $SAID" > /home/app/built.txt
LABEL team=shells
CMD ["sh", "-c", "cat /etc/notes.txt"]
"""


def context(dockerfile: str, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


FILES = {"app/run.sh": b"#!/bin/sh\necho running\n", "app/conf/a.txt": b"a\n", "notes.txt": b"notes\n"}


def build(api: httpx.Client, name: str, data: bytes) -> list[dict[str, Any]]:
    with api.stream("POST", "/v1/templates/dockerfile", params={"name": name}, content=data) as r:
        assert r.status_code == 200, r.read().decode()
        return [json.loads(line) for line in r.iter_lines() if line]


def cached_lines(events: list[dict[str, Any]]) -> list[int]:
    return [
        int(e["data"].split(":")[0].split()[1])
        for e in events
        if e["type"] == "output" and "cached" in e["data"]
    ]


def test_a_dockerfile_builds_and_a_changed_step_rebuilds_only_from_there(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    assert import_image(api, registry, "busybox:1", "busybox:1").status_code == 200
    first = build(api, "df:1", context(DOCKERFILE, FILES))
    assert first[-1]["type"] == "done", first[-3:]
    assert cached_lines(first) == []
    t = first[-1]["template"]
    assert (t["kind"], t["parent"], t["workdir"]) == ("dockerfile", "busybox:1", "/srv/app")
    assert t["env"]["APP_MODE"] == "prod" and t["env"]["SAID"] == "hi"
    assert t["image"]["user"] == "app" and t["image"]["cmd"] == ["sh", "-c", "cat /etc/notes.txt"]
    assert t["image"]["labels"]["team"] == "shells"

    shell = make(language="bash", template="df:1")
    out = run(api, shell["id"], "cat /home/app/built.txt; ./run.sh; cat conf/a.txt /etc/notes.txt; id -u")
    assert out == "built by 1000 in /srv/app saying hi\nrunning\na\nnotes\n1000\n"

    # the same again: nothing runs; then a change in the last COPY's content: the steps before it come
    # from the cache, the COPY and the RUN after it run again
    again = build(api, "df:1", context(DOCKERFILE, FILES))
    assert again[-1]["type"] == "cached"
    changed = build(api, "df:2", context(DOCKERFILE, {**FILES, "notes.txt": b"new notes\n"}))
    assert changed[-1]["type"] == "done", changed[-3:]
    assert cached_lines(changed) == [6, 7]  # WORKDIR and the first COPY; line 8 (notes.txt) changed
    shell2 = make(language="bash", template="df:2")
    assert run(api, shell2["id"], "cat /etc/notes.txt /home/app/built.txt") == (
        "new notes\nbuilt by 1000 in /srv/app saying hi\n"
    )
    listed = [x["name"] for x in api.get("/v1/templates").json()["templates"]]
    assert "df:1" in listed and not any(n.startswith("dfstep-") for n in listed)  # cached steps are hidden


def test_bad_dockerfiles_are_refused_naming_the_line(api: httpx.Client, registry: Registry) -> None:
    assert import_image(api, registry, "busybox:1", "busybox:1").status_code == 200

    def post(dockerfile: str) -> httpx.Response:
        data = context(dockerfile, FILES)
        return api.post("/v1/templates/dockerfile", params={"name": "bad:1", "wait": "true"}, content=data)

    err = error_of(post("FROM busybox:1\nRUN true\nEXPOSE 80\n"), 400, "invalid_dockerfile")
    assert err["details"] == {"line": 3} and "EXPOSE is not supported" in err["message"]
    err = error_of(post("FROM busybox:1\nCOPY --from=x a b\n"), 400, "invalid_dockerfile")
    assert err["details"] == {"line": 2}
    error_of(post("RUN true\n"), 400, "invalid_dockerfile")
    error_of(post("FROM nothing-like-this:1\n"), 404, "template_not_found")
    failed = post("FROM busybox:1\nRUN echo before\nRUN echo oops >&2; exit 7\n")
    err = error_of(failed, 422, "template_build_failed")
    assert (
        err["details"]["step"]["line"] == 3
        and err["details"]["exit_code"] == 7
        and "oops" in err["details"]["output"]
    )
    assert api.get("/v1/templates/bad:1").status_code == 404


def test_the_cli_imports_builds_from_a_dockerfile_and_exports(
    oci_server: ServerProcess, registry: Registry, tmp_path: Path
) -> None:
    env = os.environ | {
        "SHELLS_BASE_URL": oci_server.url,
        "SHELLS_API_TOKEN": oci_server.token,
        "SHELLS_REGISTRY_PASSWORD": CREDS["password"],
    }

    def shells(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "shells.cli.main", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)

    imported = shells(
        "template", "import", registry.ref("busybox:1"), "cli-bb:1", "--username", CREDS["username"], "-v"
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "cli-bb:1\n"
    assert "step 2/4: download 1 layers" in imported.stderr and "layer 1/1" in imported.stderr
    (tmp_path / "Dockerfile").write_text("FROM cli-bb:1\nCOPY hello.txt /hello.txt\n")
    (tmp_path / "hello.txt").write_text("hello\n")
    built = shells(
        "template", "build", "-f", str(tmp_path / "Dockerfile"), "--context", str(tmp_path), "cli-df:1"
    )
    assert built.returncode == 0, built.stderr
    assert built.stdout == "cli-df:1\n" and "COPY hello.txt /hello.txt" in built.stderr
    exported = shells(
        "template", "export", "cli-df:1", registry.ref("exported/cli:1"), "--username", CREDS["username"]
    )
    assert exported.returncode == 0, exported.stderr
    assert f"{registry.ref('exported/cli:1')}@sha256:" in exported.stderr


def test_from_may_name_an_image_in_a_registry(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    data = context(f"FROM {registry.ref('musl:1')}\nRUN hello-musl > /greeting\n", {})
    auth = base64.b64encode(f"{CREDS['username']}:{CREDS['password']}".encode()).decode()
    params = {"name": "from-registry:1", "wait": "true"}
    refused = api.post("/v1/templates/dockerfile", params=params, content=data)
    error_of(refused, 403, "registry_denied")
    r = api.post(
        "/v1/templates/dockerfile", params=params, content=data, headers={"X-Shells-Registry-Auth": auth}
    )
    assert r.status_code == 200, r.text
    parent = r.json()["parent"]
    assert parent.startswith("from-") and api.get(f"/v1/templates/{parent}").json()["kind"] == "image"
    shell = make(language="bash", template="from-registry:1")
    assert run(api, shell["id"], "cat /greeting") == "hello from musl\n"
