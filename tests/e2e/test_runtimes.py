"""The runtime matrix and how each class says it runs on this host."""

from __future__ import annotations

import httpx

from shells.domain.isolation import Language, Runtime
from shells.sdk import Shell

from .harness import ServerProcess


def test_the_matrix_has_every_language_in_every_class_and_says_why_not(api: httpx.Client) -> None:
    rows = api.get("/v1/runtimes").json()["runtimes"]
    cells = {(r["language"], r["runtime"]) for r in rows}
    assert cells == {(lang.value, rt.value) for lang in Language for rt in Runtime}
    assert len(rows) == len(cells)
    container = {r["language"]: r for r in rows if r["runtime"] == "container"}
    assert all(r["available"] for r in container.values())
    assert container["python"]["version"].startswith("3.")  # python:1 is ready on every server
    assert container["python"]["notes"] == "template python:1"
    for row in rows:
        if not row["available"]:
            assert len(row["notes"]) > 10, row  # an unavailable cell always says why


def test_the_matrix_needs_a_token(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/v1/runtimes").status_code == 401


def test_info_and_every_shell_say_how_their_class_runs(api: httpx.Client, shell: Shell) -> None:
    details = api.get("/v1/info").json()["runtimes"]["container"]["details"]
    assert details["oci_runtime"].startswith("crun ")
    record = api.get(f"/v1/shells/{shell.id}").json()
    assert record["runtime_details"] == details
    assert record["idle_timeout_s"] is None  # containers cannot pause, so they never pause on idle
    listed = api.get("/v1/shells").json()["shells"]
    assert all(s["runtime_details"] == details for s in listed if s["runtime"] == "container")


def test_pause_resume_and_fork_are_typed_409s_for_containers(api: httpx.Client, shell: Shell) -> None:
    for capability in ("pause", "resume", "fork"):
        r = api.post(f"/v1/shells/{shell.id}/actions", json={"capability": capability})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "action_not_supported"
    assert api.get(f"/v1/shells/{shell.id}").json()["state"] == "running"
