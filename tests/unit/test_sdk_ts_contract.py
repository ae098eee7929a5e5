"""What the TypeScript packages in sdk-ts/ copy from the Python code stays equal to it: the error
classes of @shells/sdk are the server's tree (name, parent, code), and the tool table of @shells/mcp is
the Python MCP server's (scripts/mcp_tools_json.py writes it)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from shells.domain.errors import ERRORS_BY_CODE, ShellsError

ROOT = Path(__file__).resolve().parents[2]
ERRORS_TS = ROOT / "sdk-ts" / "packages" / "sdk" / "src" / "errors.ts"
TOOLS_JSON = ROOT / "sdk-ts" / "packages" / "mcp" / "src" / "tools.json"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_typescript_error_classes_are_the_servers() -> None:
    declared = set(
        re.findall(
            r'^export class (\w+) extends (\w+) \{\n  static override readonly code: string = "(\w+)";',
            ERRORS_TS.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    )
    classes = [cls for cls in ERRORS_BY_CODE.values() if cls is not ShellsError]
    expected = {(cls.__name__, cls.__mro__[1].__name__, cls.code) for cls in classes}
    assert declared == expected, f"sdk-ts errors.ts differs from domain/errors.py: {declared ^ expected}"


def test_the_npm_mcp_server_has_the_python_servers_tool_table() -> None:
    rendered = _script("mcp_tools_json").render()
    assert TOOLS_JSON.read_text(encoding="utf-8") == rendered, (
        "run: .venv/bin/python scripts/mcp_tools_json.py > sdk-ts/packages/mcp/src/tools.json"
    )
