"""Pure rules of tenancy: scopes, roles, limits, token format, the rate limiter, request metadata."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from shells.control.auth import hash_token, mint_secret
from shells.control.ratelimit import RateLimiter
from shells.domain import access
from shells.domain.access import GRANTABLE, KNOWN_SCOPES, Role, parse_role, parse_scopes
from shells.domain.audit import parse_door, parse_time, request_id_from
from shells.domain.errors import InvalidRequest
from shells.domain.tenancy import (
    Limits,
    TermCredentialRecord,
    parse_limit_overrides,
    parse_principal_name,
    parse_tenant_name,
)
from shells.domain.terminal import check_window


def test_the_issue_scopes_all_exist() -> None:
    wanted = {
        "shells.read",
        "shells.create",
        "shells.act",
        "shells.destroy",
        "shells.exec",
        "shells.files",
        "shells.term",
        "shells.agent.invoke",
        "tenant.admin",
    }
    assert wanted <= KNOWN_SCOPES
    assert parse_scopes(["shells.read", "shells.exec"]) == {"shells.read", "shells.exec"}
    assert parse_scopes([]) == frozenset()


@pytest.mark.parametrize(
    ("value", "needle"),
    [("shells.read", "list of scope"), (["shells.root"], "shells.root"), ([1], "list of scope")],
)
def test_bad_scopes_name_what_is_wrong(value: object, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(needle)) as caught:
        parse_scopes(value)
    if isinstance(value, list) and value and isinstance(value[0], str):
        assert "Known scopes" in caught.value.message


def test_roles_are_ordered_and_each_permission_needs_the_least_role() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.OWNER
    viewer_may = {
        p.name for p in vars(access).values() if isinstance(p, access.Permission) and p.role <= Role.VIEWER
    }
    operator_may = {
        p.name for p in vars(access).values() if isinstance(p, access.Permission) and p.role <= Role.OPERATOR
    }
    assert viewer_may == {"read", "files.read"}
    assert operator_may == viewer_may | {"files.write", "exec", "act", "term", "network", "save"}
    assert access.DESTROY.role is Role.OWNER and access.SHARE.role is Role.OWNER
    assert parse_role("viewer") is Role.VIEWER
    assert set(GRANTABLE) == {"viewer", "operator"}
    with pytest.raises(InvalidRequest, match="viewer, operator"):
        parse_role("owner")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ({"max_shells": 0}, "positive whole"),
        ({"max_shells": 1.5}, "positive whole"),
        ({"max_shells": True}, "positive whole"),
        ({"max_vcpus": -1}, "positive number"),
        ({"gpus": 1}, "Unknown quota 'gpus'"),
        ([1], "must be an object"),
    ],
)
def test_bad_limits_are_refused(value: object, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(needle)):
        parse_limit_overrides(value)


def test_limit_overrides_replace_only_what_they_name() -> None:
    defaults = Limits(20, 16.0, 32768, 100, 100.0, 200)
    overrides = parse_limit_overrides({"max_shells": 3, "max_vcpus": 1.5, "requests_per_s": 2})
    assert overrides == {"max_shells": 3, "max_vcpus": 1.5, "requests_per_s": 2.0}
    limits = defaults.with_overrides(overrides)
    assert (limits.max_shells, limits.max_vcpus, limits.max_memory_mib, limits.requests_per_s) == (
        3,
        1.5,
        32768,
        2.0,
    )


@pytest.mark.parametrize("name", ["", "Acme", "-acme", "a" * 64, "ac me", "acme/x"])
def test_bad_tenant_names(name: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_tenant_name(name)


@pytest.mark.parametrize("name", ["", ".hidden", "a b", "a/b", "x" * 129, 5])
def test_bad_principal_names(name: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_principal_name(name)


def test_a_minted_secret_has_a_visible_prefix_and_only_its_hash_is_kept() -> None:
    secret = mint_secret("shl_")
    assert re.fullmatch(r"shl_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", secret.token)
    assert secret.token.startswith(secret.prefix + "_")
    assert secret.hash == hashlib.sha256(secret.token.encode()).hexdigest() == hash_token(secret.token)
    assert secret.token not in secret.hash
    assert mint_secret("shl_").token != secret.token


def test_a_terminal_credential_is_shown_masked() -> None:
    now = datetime.now(UTC)
    cred = TermCredentialRecord("tc_1", "t", "sh_1", "p", "tok_1", "a1b2", now, now + timedelta(seconds=5))
    assert cred.masked == "term_…a1b2"
    assert cred.to_public(in_use=True)["token"] == "term_…a1b2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.take("tok", rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("tok", rate=2.0, burst=3)
    assert wait == pytest.approx(0.5)
    assert limiter.take("other", rate=2.0, burst=3) == 0.0  # buckets are per token
    clock.now += 0.5
    assert limiter.take("tok", rate=2.0, burst=3) == 0.0
    assert limiter.take("tok", rate=2.0, burst=3) > 0
    clock.now += 3600  # refills only up to the burst
    assert sum(limiter.take("tok", rate=2.0, burst=3) == 0.0 for _ in range(5)) == 3


def test_doors_and_request_ids() -> None:
    assert parse_door(None) == "rest"
    assert [parse_door(d) for d in ("cli", "sdk", "mcp", "console")] == ["cli", "sdk", "mcp", "console"]
    with pytest.raises(InvalidRequest, match="X-Shells-Door"):
        parse_door("backdoor")
    assert request_id_from("abc-123.x") == "abc-123.x"
    for bad in (None, "", "a b", "x" * 65, "évil", "a\nb"):
        made = request_id_from(bad)
        assert re.fullmatch(r"[0-9a-f]{16}", made)


def test_audit_times() -> None:
    assert parse_time("2026-01-31T12:00:00Z", "since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time("2026-01-31T13:00:00+01:00", "since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time("2026-01-31T12:00:00", "since") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time(None, "since") is None
    with pytest.raises(InvalidRequest, match="'until' must be an ISO 8601"):
        parse_time("yesterday", "until")


@pytest.mark.parametrize(("cols", "rows"), [(0, 24), (80, 0), (5000, 24), ("80", 24), (True, 24), (80, None)])
def test_terminal_windows_are_bounded(cols: object, rows: object) -> None:
    with pytest.raises(InvalidRequest):
        check_window(cols, rows)
