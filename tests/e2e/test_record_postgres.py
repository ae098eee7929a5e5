"""A server whose record lives on PostgreSQL (what a cluster's control plane uses) behaves as one on
SQLite: shells, snapshots, tenants, tokens and usage are rows in PostgreSQL, a kill -9 of the server
loses nothing, and a restart of PostgreSQL itself costs at most a typed, retryable answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import PostgresServer

from .harness import ServerProcess, running_server
from .rest import exec_wait
from .tenancy import MEMBER, Tenancy

NOTE = "/workspace/note.txt"


@pytest.fixture(scope="module")
def pg_server(data_root: Path, postgres: PostgresServer) -> Iterator[ServerProcess]:
    env = {"SHELLS_DATABASE_URL": postgres.new_database("record")}
    with running_server(data_root / "pg", warm_pool=1, env=env) as srv:
        yield srv


def _rows(postgres: PostgresServer, server: ServerProcess, sql: str) -> str:
    return postgres.psql(sql, database=server.record_url.rsplit("/", 1)[1])


def test_the_record_is_in_postgresql_and_survives_a_kill_9(
    pg_server: ServerProcess, postgres: PostgresServer
) -> None:
    tenancy = Tenancy(pg_server)
    acme = tenancy.tenant("acme")
    member = tenancy.caller(acme, "dev", MEMBER)
    try:
        r = member.http.post("/v1/shells", json={"language": "python"})
        assert r.status_code == 201, r.text
        shell = r.json()["id"]
        r = member.http.put(f"/v1/shells/{shell}/files", params={"path": NOTE}, content=b"kept")
        assert r.status_code == 200, r.text
        r = member.http.post(f"/v1/shells/{shell}/actions/snapshot", json={})
        assert r.status_code == 200, r.text

        assert not (pg_server.data_dir / "shells.db").exists(), "the server still wrote SQLite"
        assert _rows(postgres, pg_server, f"SELECT tenant FROM shells WHERE id = '{shell}'") == acme
        assert _rows(postgres, pg_server, f"SELECT count(*) FROM snapshots WHERE shell_id = '{shell}'") == "1"
        assert _rows(postgres, pg_server, f"SELECT count(*) FROM tokens WHERE tenant = '{acme}'") == "1"

        pg_server.kill9()
        pg_server.start()
        r = member.http.get(f"/v1/shells/{shell}")
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        r = member.http.get(f"/v1/shells/{shell}/files", params={"path": NOTE})
        assert r.status_code == 200 and r.content == b"kept", r.text
        other = tenancy.caller(tenancy.tenant("other"), "dev", MEMBER)
        assert other.http.get(f"/v1/shells/{shell}").status_code == 404
        r = member.http.get("/v1/usage")
        assert r.status_code == 200, r.text
        assert member.http.delete(f"/v1/shells/{shell}").status_code == 204
    finally:
        tenancy.close()


def test_while_postgresql_is_down_requests_get_a_retryable_error_and_nothing_is_lost(
    pg_server: ServerProcess, postgres: PostgresServer
) -> None:
    with httpx.Client(
        base_url=pg_server.url, headers={"Authorization": f"Bearer {pg_server.token}"}, timeout=60
    ) as api:
        r = api.post("/v1/shells", json={"language": "bash"})
        assert r.status_code == 201, r.text
        before = r.json()["id"]

        postgres.stop()
        try:
            for request in (api.build_request("GET", "/v1/shells"),
                            api.build_request("POST", "/v1/shells", json={"language": "bash"}),
                            api.build_request("GET", f"/v1/shells/{before}")):  # fmt: skip
                r = api.send(request)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "record_unavailable" and r.headers["Retry-After"] == "1"
        finally:
            postgres.start()

        r = api.post("/v1/shells", json={"language": "bash"})
        assert r.status_code == 201, r.text
        after = r.json()["id"]
        listed = {s["id"] for s in api.get("/v1/shells").json()["shells"]}
        assert listed == {before, after}, "a create refused while the record was down left a shell"
        for shell in (before, after):
            assert exec_wait(api, shell, "echo ok")["stdout"] == "ok\n"
            assert api.delete(f"/v1/shells/{shell}").status_code == 204
