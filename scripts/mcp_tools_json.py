"""Writes the MCP tool table (names, titles, descriptions, input and output schemas, annotations) and
the server's instructions as JSON, for the npm MCP package (sdk-ts/packages/mcp/src/tools.json), so both
stdio servers list exactly the same tools. tests/unit/test_sdk_ts_contract.py fails when the checked-in
file is not what this prints.

Usage: .venv/bin/python scripts/mcp_tools_json.py > sdk-ts/packages/mcp/src/tools.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shells.mcp.schemas import DEFAULT_OUTPUT_CHARS, DEFAULT_READ_BYTES
from shells.mcp.server import INSTRUCTIONS
from shells.mcp.tools import CONSEQUENCES, TOOLS


def tool_table() -> dict[str, Any]:
    return {
        "instructions": INSTRUCTIONS,
        "defaults": {"output_chars": DEFAULT_OUTPUT_CHARS, "read_bytes": DEFAULT_READ_BYTES},
        "consequences": {str(c): text for c, text in CONSEQUENCES.items()},
        "tools": [t.to_mcp().model_dump(by_alias=True, exclude_none=True, mode="json") for t in TOOLS],
    }


def render() -> str:
    return json.dumps(tool_table(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
