"""Prints the server's OpenAPI document (what ``GET /openapi.json`` answers) without starting a server:
the application is built over a throwaway data directory and never started. The TypeScript SDK's
types are generated from it (docs/sdk-typescript.md).

Usage: .venv/bin/python scripts/openapi_json.py > sdk-ts/openapi.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from shells.server import build_app
from shells.settings import Settings


def document() -> str:
    with tempfile.TemporaryDirectory(prefix="shells-openapi-") as data_dir:
        app = build_app(Settings(data_dir=Path(data_dir)))
        return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
