"""The REST contract in process: every body is a documented model, bad bodies are the typed 400 they
always were, and every answer's status is one its operation declares (``DeclaredStatuses``).

The app holds the real routers and error handling; the control plane is a stand-in that answers
every call with a 409, so a body that passes validation is seen to reach the route."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

import shells.api
from shells.api import deps, errors, openapi_doc
from shells.api.contract import body_model
from shells.api.drain import Drain
from shells.domain.errors import Conflict
from shells.domain.principal import Principal
from tests.support.contract import DeclaredStatuses

ROUTERS: tuple[ModuleType, ...] = tuple(
    module
    for info in pkgutil.iter_modules(shells.api.__path__)
    # ``console`` serves the web console's static assets, outside the API document; ``app``
    # imports the routers it serves.
    if info.name not in ("console", "app")
    and hasattr(module := importlib.import_module(f"shells.api.{info.name}"), "router")
)
"""Every API module with a router: a new one is checked without being listed here."""
NO_BODY = {"/api/agent/invoke", "/v1/shells/{shell_id}/files"}
"""Operations whose body is not JSON: MCP's JSON-RPC (its own SDK reads it) and a file's bytes."""


class Reached:
    """A stand-in control plane: any call answers 409 ``reached``."""

    def __getattr__(self, _: str) -> Reached:
        return self

    def __call__(self, *_: Any, **__: Any) -> None:
        raise Conflict("reached")


def make_app() -> FastAPI:
    app = FastAPI(generate_unique_id_function=openapi_doc.operation_id)
    app.state.drain = Drain(1.0)
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    openapi_doc.install(app)

    async def control() -> Reached:
        return Reached()

    async def principal() -> Principal:
        return Principal("admin", "default", frozenset())

    app.dependency_overrides[deps.get_control] = control
    app.dependency_overrides[deps.get_principal] = principal
    return app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    """One app for the module's readers: its document is generated once (seconds of CPU) and cached.
    A test that changes the document makes its own."""
    return make_app()


@pytest.fixture
def checked(app: FastAPI) -> Iterator[DeclaredStatuses]:
    check = DeclaredStatuses(app)
    yield check
    assert not check.undeclared, check.undeclared


@pytest.fixture
def http(checked: DeclaredStatuses) -> Iterator[TestClient]:
    with TestClient(checked) as client:
        yield client


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json()["error"])


def test_every_json_body_is_a_model_in_the_document(app: FastAPI) -> None:
    doc = app.openapi()
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        untyped = [d.call for d in route.dependant.dependencies if d.call is deps.json_body]
        assert not untyped, f"{route.path} reads an untyped body"
        for method in (route.methods or set()) - {"HEAD"}:
            operation = doc["paths"][route.path_format][method.lower()]
            if method in ("POST", "PUT", "PATCH") and route.path_format not in NO_BODY:
                model = body_model(route)
                if model is not None:
                    ref = operation["requestBody"]["content"]["application/json"]["schema"]
                    assert ref == {"$ref": f"#/components/schemas/{model.__name__}"}, route.path
            errors_declared = {s for s in operation["responses"] if s.startswith(("4", "5"))}
            assert "400" in errors_declared and "503" in errors_declared, route.path
            assert "422" not in errors_declared or route.path == "/v1/templates/build", route.path


def test_operations_are_named_and_ask_for_the_bearer_token(app: FastAPI) -> None:
    doc = app.openapi()
    operations = [(path, op) for path, ops in doc["paths"].items() for op in ops.values()]
    ids = [op["operationId"] for _, op in operations]
    assert len(ids) == len(set(ids)) and {"create_shell", "exec", "act_by_body"} <= set(ids)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, op in operations:
        assert all(p["name"] != "authorization" for p in op.get("parameters", [])), path
        assert op.get("security") == ([{"bearer": []}] if path != "/v1/info" else None), path


def test_every_field_of_every_body_is_described(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Body") and not name.startswith(("Error", "ExecResult")):
            assert schema.get("additionalProperties") is False, name
            for field, prop in schema["properties"].items():
                assert prop.get("description"), f"{name}.{field}"


def test_streams_are_documented(app: FastAPI) -> None:
    doc = app.openapi()
    ok = doc["paths"]["/v1/shells/{shell_id}/exec"]["post"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "application/x-ndjson"}
    lines = ok["application/x-ndjson"]["schema"]["oneOf"]
    assert {"$ref": "#/components/schemas/ExitLine"} in lines
    assert "ExitLine" in doc["components"]["schemas"]
    feed = doc["paths"]["/v1/events/stream"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in feed


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"language": "cobol"}, "bash, node, python, rust, go"),
        ({"language": "python", "runtime": "vmware"}, "container"),
        ({"language": "python", "network": {"mode": "dialup"}}, "sealed"),
        ({"language": "python", "network": {"mode": "internet", "deny": []}}, "deny"),
        ({"language": "python", "colour": "red"}, "colour"),
        ({"language": "python", "env": {"A": 1}}, "'env'"),
        ({"language": "python", "idle_timeout_s": -1}, "'idle_timeout_s'"),
        ({"language": "python", "idle_timeout_s": "5m"}, "'idle_timeout_s'"),
        ({"language": "python", "labels": {str(i): "x" for i in range(65)}}, "'labels'"),
    ],
)
def test_a_body_that_does_not_fit_is_a_400_naming_the_field(
    http: TestClient, body: dict[str, Any], needle: str
) -> None:
    err = _error(http.post("/v1/shells", json=body), 400)
    assert err["code"] == "invalid_request"
    assert needle in err["message"], err


def test_bodies_are_read_as_before(http: TestClient) -> None:
    assert (
        _error(http.post("/v1/shells", content=b"{not json"), 400)["message"] == "The body is not valid JSON."
    )
    assert "JSON object" in _error(http.post("/v1/shells", json=["python"]), 400)["message"]
    assert _error(http.post("/v1/shells", content=b'{"idle_timeout_s": 99999999999999999999}'), 400)
    assert _error(http.post("/v1/shells", content=b" " * (2 << 20)), 413)["code"] == "payload_too_large"
    # Any content type is read as JSON (curl -d sends a form type), and an empty body is {}.
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert _error(http.post("/v1/shells", content=b'{"language": "bash"}', headers=form), 409)
    assert _error(http.post("/v1/shells/sh_x/actions/restart"), 409)["message"] == "reached"
    assert _error(http.post("/v1/shells/sh_x/term", content=b""), 409)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/shells/sh_x/exec", {"cmd": "ls"}, "cmd"),
        ("/v1/shells/sh_x/exec", {"timeout_s": True}, "timeout_s"),
        ("/v1/shells/sh_x/run", {"language": "python"}, "code"),
        ("/v1/shells/sh_x/actions", {"capability": "explode"}, "action"),
        ("/v1/shells/sh_x/actions/fork", {"count": 17}, "count"),
        ("/v1/shells/sh_x/term", {"ttl_s": 0}, "ttl_s"),
        ("/v1/shells/sh_x/ports", {"port": 70000}, "port"),
        ("/v1/shells/sh_x/grants", {"principal": "bob", "role": "owner"}, "role"),
        ("/v1/tokens", {"scopes": ["shells.fly"]}, "scopes"),
        ("/v1/tenants", {"name": "Acme"}, "name"),
        ("/v1/networks", {"name": "x", "mtu": 9000}, ""),
        ("/v1/networks/lan/shells", {}, "shell_id"),
        (
            "/v1/templates",
            {"from_shell": "sh_x", "name": "a:1", "include_workspace": "yes"},
            "include_workspace",
        ),
    ],
)
def test_each_body_names_its_bad_field(http: TestClient, path: str, body: dict[str, Any], field: str) -> None:
    err = _error(http.post(path, json=body), 400)
    assert err["details"].get("field", "") == field, err


def test_a_valid_body_reaches_the_route(http: TestClient) -> None:
    for path, body in [
        ("/v1/shells/sh_x/exec", {"cmd": ["true"], "timeout_s": 5}),
        ("/v1/shells/sh_x/run", {"code": "print(1)", "language": "python"}),
        ("/v1/shells/sh_x/actions", {"capability": "fork", "count": 2}),
        ("/v1/tokens", {"scopes": ["shells.read"], "kind": "person"}),
    ]:
        assert _error(http.post(path, json=body), 409)["message"] == "reached", path


def test_an_undeclared_status_is_caught() -> None:
    """The check itself: take 400 out of one operation's document and answer a bad body there."""
    check = DeclaredStatuses(make_app())
    del check.app.openapi()["paths"]["/v1/shells"]["post"]["responses"]["400"]
    with TestClient(check) as client:
        assert client.post("/v1/shells", json={"colour": "red"}).status_code == 400
    assert check.undeclared == ["POST /v1/shells answered 400"]


def test_the_mcp_tools_take_their_arguments_from_the_same_models() -> None:
    from shells.control.bodies import ActionParams, CreateShellBody, RunBody, TermBody
    from shells.mcp import schemas

    cases: list[tuple[dict[str, Any], type[BaseModel], set[str]]] = [
        (schemas.CREATE_INPUT, CreateShellBody, set()),
        (schemas.ACTION_INPUT, ActionParams, {"shell_id", "action"}),
        (schemas.TERM_INPUT, TermBody, {"shell_id"}),
        (schemas.RUN_CODE_INPUT, RunBody, {"shell_id", "max_output_chars"}),
    ]
    for schema, model, extra in cases:
        assert set(schema["properties"]) == set(model.model_fields) | extra
        assert schema["additionalProperties"] is False
        assert "$ref" not in str(schema) and "'title'" not in str(schema)
    assert schemas.CREATE_INPUT["properties"]["language"]["enum"] == ["bash", "node", "python", "rust", "go"]


@pytest.mark.parametrize("amount", [5.49e16, "1e15", "1000000000000.000001"])
def test_an_amount_the_store_cannot_hold_is_a_400(amount: float | str) -> None:
    """Found by schemathesis: a free tier of 5e16 dollars overflowed the store's 64-bit micro-dollars."""
    from shells.domain.errors import InvalidRequest
    from shells.domain.usage import parse_usd

    with pytest.raises(InvalidRequest, match="at most"):
        parse_usd(amount, "free_tier_usd", allow_none=True)
