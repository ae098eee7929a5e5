"""Templates exported to a real registry as OCI images that podman pulls and runs, with the
template's env, working directory and user."""

from __future__ import annotations

import json

import httpx

from tests.support.oci_registry import Registry

from .oci import CREDS, api, import_image, make, oci_server, podman, registry
from .rest import ShellMaker, exec_wait

__all__ = ["api", "make", "oci_server", "registry"]  # fixtures


def test_an_exported_template_runs_under_podman_with_its_defaults(
    api: httpx.Client, registry: Registry
) -> None:
    assert import_image(api, registry, "busybox:1", "bb:1").status_code == 200
    target = registry.ref("exported/bb:1")
    r = api.post(
        "/v1/templates/export",
        params={"wait": "true"},
        json={"template": "bb:1", "image": target, "credentials": CREDS},
    )
    assert r.status_code == 200, r.text
    with podman(registry) as run:
        pulled = run("pull", "-q", target)
        assert pulled.returncode == 0, pulled.stderr
        out = run("run", target, "sh", "-c", "id -u; pwd; echo $GREETING; ls /bin/busybox")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n") == ["1000", "/home/app", "hello from the image", "/bin/busybox", ""]
        labels = json.loads(run("image", "inspect", target).stdout)[0]["Labels"]
        assert (
            labels["org.shells.template"] == "bb:1"
            and labels["org.opencontainers.image.title"] == "busybox test"
        )
    denied = api.post(
        "/v1/templates/export",
        params={"wait": "true"},
        json={"template": "bb:1", "image": target, "credentials": {**CREDS, "password": "wrong"}},
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "registry_denied"


def test_a_saved_shell_with_its_workspace_exports_and_runs_under_podman(
    api: httpx.Client, registry: Registry, make: ShellMaker
) -> None:
    assert import_image(api, registry, "busybox:1", "bb:1").status_code == 200
    shell = make(language="bash", template="bb:1")
    out = exec_wait(api, shell["id"], "echo saved > /home/app/state.txt && echo ws > /workspace/w.txt")
    assert out["exit_code"] == 0, out  # as the image's user, who owns /workspace
    saved = api.post(
        "/v1/templates", json={"from_shell": shell["id"], "name": "bb-saved:1", "include_workspace": True}
    )
    assert saved.status_code == 201, saved.text
    target = registry.ref("exported/saved:1")
    body = {"template": "bb-saved:1", "image": target, "credentials": CREDS}
    assert api.post("/v1/templates/export", params={"wait": "true"}, json=body).status_code == 200
    with podman(registry) as run:
        assert run("pull", "-q", target).returncode == 0
        out2 = run("run", target, "sh", "-c", "cat /home/app/state.txt /workspace/w.txt; id -u")
        assert (out2.returncode, out2.stdout) == (0, "saved\nws\n1000\n"), out2.stderr
