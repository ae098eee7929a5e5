"""schemathesis over the real server's ``/openapi.json``: generated requests (valid and invalid) to
every operation, with zero server errors, zero statuses the document does not declare, and content
types and bodies as documented.

The server is this module's own: its default tenant may hold almost no vCPUs, so a generated create
is refused by the quota instead of starting a real shell, and a generous rate limit keeps the run
from being answered 429. The SSE feed is left out (it never ends); every other operation is run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .harness import ServerProcess, leak_checked_server

EXAMPLES_PER_OPERATION = 10
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
"""What the run must never see: a 5xx, an undeclared status, an undeclared content type, a body that
does not fit its documented schema."""


@pytest.fixture(scope="module")
def fuzzed(data_root: Path) -> Iterator[ServerProcess]:
    with leak_checked_server(data_root / "fuzz", warm_pool=0) as server:
        quotas = {"max_vcpus": 0.001, "requests_per_s": 100000, "burst": 100000}
        r = httpx.patch(
            server.url + "/v1/tenants/default",
            json={"quotas": quotas},
            headers={"Authorization": f"Bearer {server.token}"},
        )
        assert r.status_code == 200, r.text
        yield server


def schemathesis(server: ServerProcess, location: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", location, "--url", server.url),
        *("-H", f"Authorization: Bearer {server.token}", "--checks", CHECKS),
        *("--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION)),
        *("--exclude-path", "/v1/events/stream", "--request-timeout", "30", "--seed", "7"),
        *("--generation-database", "none", "--no-color", "--workers", "2", *extra),
    ]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=300, cwd=server.data_dir
    )


def test_generated_requests_get_only_documented_answers(fuzzed: ServerProcess) -> None:
    run = schemathesis(fuzzed, fuzzed.url + "/openapi.json")
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:] + fuzzed.log_tail()
    assert " passed" in run.stdout
    assert "Traceback" not in fuzzed.log_tail(200_000)


def test_an_undeclared_status_fails_the_run(fuzzed: ServerProcess, tmp_path: Path) -> None:
    """The check itself: the same server, a document without create's 400, bad bodies sent."""
    doc = httpx.get(fuzzed.url + "/openapi.json").json()
    del doc["paths"]["/v1/shells"]["post"]["responses"]["400"]
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    run = schemathesis(
        fuzzed,
        str(tmp_path / "openapi.json"),
        "--include-path-regex",
        "^/v1/shells$",
        "--include-method",
        "POST",
    )
    assert run.returncode != 0, run.stdout[-5000:]
    assert "Undocumented status code" in run.stdout and "Received: 400" in run.stdout, run.stdout[-5000:]
