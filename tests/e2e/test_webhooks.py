"""Webhooks end to end: a receiver on the fake internet gets every lifecycle event of a shell, in
order, signed; a receiver that fails or is down loses nothing, even across a server restart; a slow
one is cut off by the timeout; URLs that reach the server itself or a metadata address are refused.

Its own server (restarted by one test), with a short first retry so back-off fits in a test."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.runtime.host.local_addresses import local_addresses
from tests.support.fake_internet import FakeInternet
from tests.support.webhook_receiver import Received, WebhookReceiver

from .harness import ServerProcess, running_server
from .rest import ShellMaker, error_of, rest_client, shell_maker, wait_for

SECRET = "a-test-secret-of-enough-length"


@pytest.fixture(scope="module")
def hook_server(data_root: Path) -> Iterator[ServerProcess]:
    env = {"SHELLS_WEBHOOK_FIRST_RETRY_S": "0.5"}
    with running_server(data_root / "webhooks", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture
def api(hook_server: ServerProcess) -> Iterator[httpx.Client]:
    with rest_client(hook_server) as client:
        yield client


@pytest.fixture
def make(api: httpx.Client) -> Iterator[ShellMaker]:
    with shell_maker(api) as maker:
        yield maker


@pytest.fixture
def receiver(internet: FakeInternet) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(internet.netns_path, internet.b, 9101) as rec:
        yield rec


@pytest.fixture
def register(api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    made: list[str] = []

    def add(url: str, events: list[str] | None = None) -> dict[str, Any]:
        r = api.post("/v1/webhooks", json={"url": url, "events": events or ["*"], "secret": SECRET})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return dict(r.json())

    yield add
    for hook_id in made:
        api.delete(f"/v1/webhooks/{hook_id}")


def verified(item: Received) -> dict[str, Any]:
    """The body of a delivery after checking its signature the way a receiver must."""
    stamp = item.headers["Shells-Webhook-Timestamp"]
    want = hmac.new(SECRET.encode(), f"{stamp}.".encode() + item.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(item.headers["Shells-Webhook-Signature"], f"v1={want}")
    assert abs(int(stamp) - time.time()) < 300
    return dict(json.loads(item.body))


def types_for(receiver: WebhookReceiver, shell_id: str) -> list[str]:
    return [verified(r)["type"] for r in receiver.bodies() if verified(r)["shell_id"] == shell_id]


LIFECYCLE = ["created", "running", "stopped", "running", "deleted"]


def lifecycle(api: httpx.Client, make: ShellMaker) -> str:
    sid = str(make(language="bash")["id"])
    for action in ("stop", "start"):
        assert api.post(f"/v1/shells/{sid}/actions/{action}").status_code == 200
    assert api.delete(f"/v1/shells/{sid}").status_code == 204
    return sid


def test_every_lifecycle_event_arrives_signed_and_in_order(
    api: httpx.Client, make: ShellMaker, receiver: WebhookReceiver, register: Callable[..., dict[str, Any]]
) -> None:
    hook = register(receiver.url)
    assert hook["secret"] == SECRET and hook["events"][0] == "created"
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["secret"] is None  # shown once
    only_deleted = register(receiver.url + "?only=deleted", ["deleted"])
    sid = lifecycle(api, make)
    wait_for(lambda: types_for(receiver, sid).count("deleted") == 2)
    mine = [r for r in receiver.bodies() if verified(r)["shell_id"] == sid]
    assert [verified(r)["type"] for r in mine if r.path == "/hook"] == LIFECYCLE
    assert [verified(r)["type"] for r in mine if r.path == "/hook?only=deleted"] == ["deleted"]
    first = verified(next(r for r in mine if r.path == "/hook"))  # the order is per webhook, not across
    assert first["shell"]["id"] == sid and first["event"]["kind"] == "create"
    log = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert [d["event"] for d in log if d["shell_id"] == sid] == list(reversed(LIFECYCLE))
    assert all(d["state"] == "delivered" and d["last_status"] == 200 for d in log)
    assert only_deleted["id"] != hook["id"]

    test = api.post(f"/v1/webhooks/{hook['id']}/test")
    assert test.status_code == 202 and test.json()["state"] == "pending"
    wait_for(lambda: any(verified(r)["type"] == "test" for r in receiver.bodies()))
    wait_for(
        lambda: (
            api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"][0]["state"] == "delivered"
        )
    )


def test_a_failing_then_absent_receiver_loses_nothing_across_a_restart(
    api: httpx.Client,
    make: ShellMaker,
    receiver: WebhookReceiver,
    register: Callable[..., dict[str, Any]],
    hook_server: ServerProcess,
) -> None:
    hook = register(receiver.url)
    receiver.status = 500
    sid = str(make(language="bash")["id"])
    wait_for(lambda: len(receiver.bodies()) >= 2)  # tried, answered 500, tried again after a back-off
    log = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert log[-1]["state"] == "pending" and log[-1]["last_status"] == 500 and log[-1]["attempts"] >= 1
    assert all(verified(r)["type"] == "created" for r in receiver.bodies())  # "running" waits its turn
    receiver.down()
    hook_server.stop()
    hook_server.start()
    assert api.post(f"/v1/shells/{sid}/actions/stop").status_code == 200
    time.sleep(2)
    log = api.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
    assert "ConnectError" in log[-1]["last_error"] or "500" in log[-1]["last_error"]
    receiver.received.clear()
    receiver.status = 200
    receiver.up()
    wait_for(lambda: types_for(receiver, sid) == ["created", "running", "stopped"], timeout_s=90)


def test_a_slow_receiver_is_cut_off_and_others_are_not_held_up(
    api: httpx.Client,
    make: ShellMaker,
    receiver: WebhookReceiver,
    internet: FakeInternet,
    register: Callable[..., dict[str, Any]],
) -> None:
    slow_hook = register(receiver.url)
    receiver.delay_s = 30
    with WebhookReceiver(internet.netns_path, internet.a, receiver.port) as quick:
        register(quick.url, ["created"])
        sid = str(make(language="bash")["id"])
        wait_for(lambda: types_for(quick, sid) == ["created"], timeout_s=10)

        def timed_out() -> bool:
            log = api.get(f"/v1/webhooks/{slow_hook['id']}/deliveries").json()["deliveries"]
            return bool(log) and "Timeout" in log[-1]["last_error"]

        wait_for(timed_out, timeout_s=30)
    receiver.delay_s = 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://169.254.10.1/x", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://0.0.0.0/x", "unicast"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
    ],
)
def test_urls_that_reach_this_server_or_metadata_are_refused(api: httpx.Client, url: str, why: str) -> None:
    err = error_of(api.post("/v1/webhooks", json={"url": url, "events": ["*"]}), 400, "invalid_request")
    assert err["details"]["field"] == "url" and why in err["message"]


def test_bad_bodies_are_typed_400s_naming_the_field(api: httpx.Client, hook_server: ServerProcess) -> None:
    host_address = next(a for a in local_addresses() if a.version == 4 and not a.is_loopback)
    own = f"http://{host_address}:{hook_server.port}/"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": own, "events": ["*"]}, "url"),
        ({"url": "ftp://198.51.100.11/", "events": ["*"]}, "url"),
        ({"url": "http://user:pw@198.51.100.11/", "events": ["*"]}, "url"),
        ({"url": "http://198.51.100.11/", "events": []}, "events"),
        ({"url": "http://198.51.100.11/", "events": ["exploded"]}, "events"),
        ({"url": "http://198.51.100.11/", "events": ["*"], "secret": "short"}, "secret"),
        ({"url": "http://198.51.100.11/", "events": "created"}, "events"),
        ({"events": ["*"]}, "url"),
    ]
    for body, field in cases:
        err = error_of(api.post("/v1/webhooks", json=body), 400, "invalid_request")
        assert err["details"]["field"] == field, (body, err)
    typo = {"url": "http://198.51.100.11/", "events": ["*"], "colour": "red"}
    err = error_of(api.post("/v1/webhooks", json=typo), 400, "invalid_request")
    assert err["details"]["fields"] == ["colour"], err
    assert api.get("/v1/webhooks").json()["webhooks"] == []
    error_of(api.get("/v1/webhooks/wh_nope/deliveries"), 404, "webhook_not_found")
    error_of(api.post("/v1/webhooks/wh_nope/test"), 404, "webhook_not_found")
    error_of(api.delete("/v1/webhooks/wh_nope"), 404, "webhook_not_found")


def shells_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SHELLS_BASE_URL": server.url, "SHELLS_API_TOKEN": server.token}
    argv = [sys.executable, "-m", "shells.cli.main", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_cli_adds_lists_tests_logs_and_removes(
    hook_server: ServerProcess, receiver: WebhookReceiver
) -> None:
    added = shells_cli(hook_server, "webhook", "add", receiver.url, "--event", "created", "--secret", SECRET)
    assert added.returncode == 0, added.stderr
    hook_id = added.stdout.split()[0]
    assert SECRET in added.stdout
    listed = shells_cli(hook_server, "webhook", "ls")
    assert hook_id in listed.stdout and SECRET not in listed.stdout
    assert shells_cli(hook_server, "webhook", "test", hook_id).returncode == 0
    wait_for(lambda: any(verified(r)["type"] == "test" for r in receiver.bodies()))
    wait_for(lambda: "delivered" in shells_cli(hook_server, "webhook", "log", hook_id).stdout)
    assert shells_cli(hook_server, "webhook", "rm", hook_id).returncode == 0
    gone = shells_cli(hook_server, "webhook", "log", hook_id)
    assert gone.returncode != 0 and "webhook_not_found" in gone.stderr
    refused = shells_cli(hook_server, "webhook", "add", "http://169.254.169.254/")
    assert refused.returncode != 0 and "metadata" in refused.stderr
