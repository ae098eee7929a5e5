# Generated from tests/e2e/test_sdk_hooks_async.py by scripts/unasync.py; edit that file and run the script.
"""Webhooks through the SDK against a real server, with a receiver on the fake internet.

Written once for ``Shells``; ``scripts/unasync.py`` turns this file into
``test_sdk_hooks_sync.py``, which runs the same test through ``Shells``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shells import Shells
from shells.sdk import InvalidRequest, NotFound
from tests.support.fake_internet import FakeInternet
from tests.support.webhook_receiver import WebhookReceiver

from .harness import ServerProcess


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with FakeInternet() as net, WebhookReceiver(net.netns_path, net.b, 9110) as rec:
        yield rec


@pytest.fixture
def sdk(server: ServerProcess) -> Iterator[Shells]:
    with Shells(server.url, server.token) as client:
        yield client


def test_webhooks_register_deliver_log_test_and_delete(sdk: Shells, receiver: WebhookReceiver) -> None:
    with pytest.raises(InvalidRequest, match="loopback"):
        sdk.webhooks.create("http://127.0.0.1:9/", events=["created"])
    hook = sdk.webhooks.create(receiver.url, events=["created", "deleted"])
    assert hook.secret and "***" in repr(hook) and hook.secret not in repr(hook)
    assert [h.id for h in sdk.webhooks.list() if h.id == hook.id] == [hook.id]
    try:
        with sdk.create("bash") as shell:
            shell_id = shell.id
        for _ in range(200):
            log = sdk.webhooks.deliveries(hook.id)
            if [d.state for d in log if d.shell_id == shell_id] == ["delivered", "delivered"]:
                break
            time.sleep(0.2)
        assert [(d.event, d.state) for d in log if d.shell_id == shell_id] == [
            ("deleted", "delivered"),
            ("created", "delivered"),
        ]
        test = sdk.webhooks.test(hook.id)
        assert test.event == "test" and test.state == "pending"
    finally:
        sdk.webhooks.delete(hook.id)
    with pytest.raises(NotFound):
        sdk.webhooks.deliveries(hook.id)
