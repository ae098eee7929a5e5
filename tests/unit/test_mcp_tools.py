"""The MCP tool table and result shaping: pure logic, no server (the transports are tested end to end
in tests/e2e/test_mcp.py)."""

from __future__ import annotations

import jsonschema
import pytest

from shells.domain.capabilities import DESTRUCTIVE
from shells.domain.errors import InvalidRequest
from shells.mcp.http import security_settings
from shells.mcp.server import check_arguments
from shells.mcp.shaping import cut, mask
from shells.mcp.tools import BY_NAME, CONSEQUENCES, TOOLS
from shells.settings import Settings


def test_every_tool_has_valid_schemas_and_a_consistent_annotation() -> None:
    assert len(BY_NAME) == len(TOOLS)
    for tool in TOOLS:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
        assert tool.input_schema["additionalProperties"] is False  # a misspelt argument is refused
        assert not (tool.hints.read_only and tool.hints.destructive)
        listed = tool.to_mcp()
        assert listed.annotations is not None and listed.annotations.read_only_hint is tool.read_only


def test_every_destructive_action_says_what_it_did() -> None:
    assert CONSEQUENCES.keys() == DESTRUCTIVE


def test_arguments_are_checked_against_the_schema_with_the_field_named() -> None:
    exec_ = BY_NAME["shells_exec"]
    check_arguments(exec_, {"shell_id": "sh_1", "command": "ls", "timeout_s": 2})
    for bad, field in (
        ({"command": "ls"}, "arguments"),
        ({"shell_id": "sh_1", "timeout_s": "soon"}, "timeout_s"),
        ({"shell_id": "sh_1", "argv": []}, "argv"),
        ({"shell_id": "sh_1", "bogus": 1}, "arguments"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            check_arguments(exec_, bad)
        assert refused.value.details == {"field": field}
        assert refused.value.message.startswith("Invalid arguments for shells_exec")


def test_output_is_cut_in_the_middle_and_says_how_much() -> None:
    assert cut("short", 10, "stdout") == ("short", 0)
    text, removed = cut("a" * 50 + "b" * 50, 20, "stdout")
    assert removed == 80
    assert text.startswith("a" * 10) and text.endswith("b" * 10)
    assert "80 characters of stdout cut here" in text


def test_a_credential_is_masked_to_its_kind_and_last_characters() -> None:
    assert mask("term_abcdefgh_0123456789secretXYZ9") == "term_…XYZ9"
    assert "secret" not in mask("term_abcdefgh_0123456789secretXYZ9")


def test_only_this_servers_names_pass_the_host_and_origin_checks() -> None:
    plain = security_settings(Settings(host="0.0.0.0"))
    assert {"localhost:*", "127.0.0.1", "[::1]:*"} <= set(plain.allowed_hosts)
    assert not any("0.0.0.0" in h for h in plain.allowed_hosts)
    assert "http://localhost:*" in plain.allowed_origins
    named = security_settings(Settings(host="10.1.2.3", mcp_allowed_hosts=("shells.example.com",)))
    assert {"10.1.2.3:*", "shells.example.com", "shells.example.com:*"} <= set(named.allowed_hosts)
    assert "https://shells.example.com" in named.allowed_origins
