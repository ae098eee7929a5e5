"""The finishing touches of ``/openapi.json`` that FastAPI cannot infer from the routes.

- The models of stream lines and SSE events, referenced from hand-written media types, are added to
  the components.
- Each operation's id is its route function's name (``create_shell``, ``exec``), not FastAPI's
  ``create_shell_v1_shells_post``, so a generated client's methods read well.
- The ``Authorization`` header the routes read (``api.deps.get_principal``) becomes the bearer
  security scheme, which is how generators and explorers know to send the token.
- FastAPI's default 422 "Validation Error" is removed from every operation: this API answers bad
  input with a typed 400 (``api.contract``), and declares 422 only where a template build fails.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from .stream_docs import STREAM_MODELS

FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def operation_id(route: APIRoute) -> str:
    """``generate_unique_id_function`` of the app: the route function's name (unique in this API)."""
    return route.name.rstrip("_")


def install(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            finish(build())
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


BEARER = {"type": "http", "scheme": "bearer", "description": "An API token (shl_…), see docs/sdk.md."}


def finish(doc: dict[str, Any]) -> None:
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            params = operation.get("parameters", [])
            if any(p["in"] == "header" and p["name"] == "authorization" for p in params):
                operation["parameters"] = [p for p in params if p["name"] != "authorization"]
                operation["security"] = [{"bearer": []}]
            responses = operation.get("responses", {})
            if FASTAPI_422 in str(responses.get("422", "")):
                del responses["422"]
    doc.setdefault("components", {})["securitySchemes"] = {"bearer": BEARER}
    schemas = doc["components"].setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _, defs = models_json_schema(
        [(m, "validation") for m in STREAM_MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas.update(defs["$defs"])
