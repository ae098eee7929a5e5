"""What an agent reads back: long output cut in the middle with a marker that says what was cut,
terminal credentials masked in the text (they are whole in the structured result, for the program
that connects), and errors as MCP tool errors that carry the REST API's error code."""

from __future__ import annotations

from typing import Any

import mcp_types as types

from ..domain.errors import ShellsError

MASK_KEEP = 4
"""Characters of a secret shown at its end, as terminal credential listings show them."""


def cut(text: str, limit: int, what: str) -> tuple[str, int]:
    """``text`` if it is at most ``limit`` characters, else its head and tail around a marker naming
    how much of ``what`` was left out; and that number (0 when nothing was cut)."""
    if len(text) <= limit:
        return text, 0
    removed = len(text) - limit
    head = limit - limit // 2
    marker = (
        f"\n…[{removed} characters of {what} cut here; redirect the output to a file and read it "
        "with shells_files_read]…\n"
    )
    return text[:head] + marker + text[len(text) - limit // 2 :], removed


def mask(secret: str) -> str:
    """``term_…a1b2``: enough to tell credentials apart, not enough to use one."""
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret else ""
    return f"{prefix}…{secret[-MASK_KEEP:]}"


def ok(text: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)


def failed(exc: ShellsError) -> types.CallToolResult:
    """A tool error an agent can act on: ``<code>: <message>``, with the REST error body as the
    structured result."""
    body = {"code": exc.code, "message": exc.message, "details": exc.details}
    return types.CallToolResult(
        content=[types.TextContent(text=f"{exc.code}: {exc.message}")],
        structured_content={"error": body},
        is_error=True,
    )
