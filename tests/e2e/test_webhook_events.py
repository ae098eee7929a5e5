"""The webhook events test_webhooks.py does not reach with a container's plain lifecycle, end to end on
the session server: a microvm's pause and resume arrive as ``paused`` and ``resumed``, and a shell the
budget cap halts arrives as ``budget_reached`` (not as a plain ``stopped``), each signed, in order
per shell, in its own tenant's webhook only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shells.sdk import Shells
from tests.support.fake_internet import FakeInternet
from tests.support.webhook_receiver import WebhookReceiver

from .rest import wait_for
from .tenancy import ADMIN, Caller, Tenancy, create_shell

SECRET = "a-secret-for-the-event-tests"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with FakeInternet() as net, WebhookReceiver(net.netns_path, net.c, 9104) as rec:
        yield rec


@pytest.fixture
def owner(tenancy: Tenancy, receiver: WebhookReceiver) -> Iterator[Caller]:
    """A tenant admin of a fresh tenant with a webhook for every event."""
    caller = tenancy.caller(tenancy.tenant("hooked"), "hana", ADMIN)
    body = {"url": receiver.url, "events": ["*"], "secret": SECRET}
    made = caller.http.post("/v1/webhooks", json=body)
    assert made.status_code == 201, made.text
    yield caller
    caller.http.delete(f"/v1/webhooks/{made.json()['id']}")


def events_of(receiver: WebhookReceiver, shell_id: str) -> list[str]:
    bodies: list[dict[str, Any]] = []
    for item in receiver.bodies():
        body = json.loads(item.body)
        if body.get("shell_id") == shell_id:
            assert item.signed_with(SECRET)
            bodies.append(body)
    return [b["type"] for b in bodies]


def test_a_microvms_pause_and_resume_arrive_in_order(
    owner: Caller, receiver: WebhookReceiver, client: Shells
) -> None:
    if not any(r.runtime == "microvm" and r.available for r in client.runtimes()):
        pytest.skip("needs the microvm class on this host (QEMU and its tools)")
    sid = create_shell(owner, runtime="microvm")
    try:
        for action in ("pause", "resume"):
            r = owner.http.post(f"/v1/shells/{sid}/actions", json={"capability": action})
            assert r.status_code == 200, r.text
    finally:
        assert owner.http.delete(f"/v1/shells/{sid}").status_code == 204
    want = ["created", "running", "paused", "resumed", "deleted"]
    wait_for(lambda: events_of(receiver, sid) == want, timeout_s=60)


def test_a_shell_the_budget_cap_halts_arrives_as_budget_reached(
    owner: Caller, receiver: WebhookReceiver
) -> None:
    sid = create_shell(owner, shape="s-8vcpu-16gb")  # ~$0.0001 in about a second as a container
    billing = f"/v1/tenants/{owner.tenant}/billing"
    try:
        assert owner.http.put(billing, json={"budget_usd": "0.0001"}).status_code == 200
        wait_for(lambda: events_of(receiver, sid)[-1:] == ["budget_reached"], timeout_s=45)
        assert events_of(receiver, sid) == ["created", "running", "budget_reached"]
    finally:
        assert owner.http.put(billing, json={"budget_usd": 10}).status_code == 200
        assert owner.http.delete(f"/v1/shells/{sid}").status_code == 204
    wait_for(lambda: events_of(receiver, sid)[-1:] == ["deleted"])
