"""The error mapping of the HTTP door, on a small app of its own: a bug still answers in the error
format, with the request id an operator looks for in the log and nothing of the host in it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shells.api.errors import install
from shells.control.request_scope import begin_request


def test_an_unexpected_exception_answers_500_in_the_error_format() -> None:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> None:
        begin_request("req-42", "api")
        raise ValueError("/var/lib/secret-host-path is odd")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "runtime_failure"
    assert error["details"] == {"request_id": "req-42"}
    assert "req-42" in error["message"]
    assert "secret-host-path" not in response.text
