"""Wire errors come back as the server's own exception classes, with code, message and request id."""

from __future__ import annotations

import httpx
import pytest

from shells.domain import errors as e
from shells.sdk.errors import error_from_response, error_from_transport, error_from_wire


@pytest.mark.parametrize("cls", [cls for _, cls in sorted(e.ERRORS_BY_CODE.items())])
def test_every_code_maps_back_to_its_own_class(cls: type[e.ShellsError]) -> None:
    sent = cls("what to fix", {"field": "x"})
    got = error_from_wire(418, {"error": sent.to_dict()}, "rid1")
    assert type(got) is cls
    assert (got.code, got.message, got.details, got.request_id) == (
        cls.code,
        "what to fix",
        {"field": "x"},
        "rid1",
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, e.InvalidRequest),
        (401, e.Unauthenticated),
        (403, e.PermissionDenied),
        (404, e.NotFound),
        (409, e.Conflict),
        (413, e.PayloadTooLarge),
        (429, e.RateLimited),
        (503, e.Unavailable),
        (504, e.Timeout),
        (418, e.ShellsError),
    ],
)
def test_a_code_this_sdk_does_not_know_falls_back_to_its_status(
    status: int, cls: type[e.ShellsError]
) -> None:
    got = error_from_wire(status, {"error": {"code": "gizmo_not_found", "message": "m"}}, None)
    assert type(got) is cls
    assert got.details["code"] == "gizmo_not_found" and got.message == "m"


def test_a_body_that_is_not_an_error_object_still_gives_a_typed_error() -> None:
    response = httpx.Response(502, text="<html>bad gateway</html>", headers={"X-Request-Id": "abc"})
    got = error_from_response(response)
    assert type(got) is e.ShellsError and "502" in got.message and got.request_id == "abc"
    assert type(error_from_response(httpx.Response(404, json={"detail": "x"}))) is e.NotFound


def test_transport_failures_are_unavailable_or_timeout() -> None:
    request = httpx.Request("POST", "http://h/v1/shells")
    lost = error_from_transport(httpx.RemoteProtocolError("gone", request=request), "http://h/v1/shells", "r")
    assert type(lost) is e.Unavailable and "not sent again" in lost.message and lost.request_id == "r"
    slow = error_from_transport(httpx.ReadTimeout("slow", request=request), "http://h/v1/shells", "r")
    assert type(slow) is e.Timeout and "timeout=" in slow.message


def test_auth_errors_share_a_base() -> None:
    assert issubclass(e.Unauthenticated, e.AuthError) and issubclass(e.PermissionDenied, e.AuthError)
