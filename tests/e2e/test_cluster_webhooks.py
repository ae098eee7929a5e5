"""The webhook dispatcher is a singleton duty: two control-plane replicas over one PostgreSQL record
and a real Kubernetes API server, a receiver on the fake internet that answers slowly (so an
attempt is in flight for a second, long enough for a second dispatcher to pick the same delivery
up); every delivery arrives exactly once, from the replica that holds the ``shells-control`` Lease.
The replicas share one secrets key, as a deployment's do (each opens the webhook's sealed secret)."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.domain.webhooks import ID_HEADER
from tests.support.fake_internet import FakeInternet
from tests.support.kube import KubeAPI
from tests.support.postgres import PostgresServer
from tests.support.webhook_receiver import WebhookReceiver

from .test_cluster_duties import LEASE_S, Replica, _until, two_replicas

RECEIVER = "198.51.100.11"


@pytest.fixture
def two(tmp_path: Path, postgres: PostgresServer, kube_api: KubeAPI) -> Iterator[list[Replica]]:
    with two_replicas(tmp_path, postgres.new_database("hooks"), kube_api) as made:
        yield made


def test_two_replicas_deliver_each_webhook_event_once(two: list[Replica]) -> None:
    _until(lambda: any(r.duties() for r in two), LEASE_S + 5, "a replica taking the duties")
    with FakeInternet() as internet, WebhookReceiver(internet.netns_path, RECEIVER, 9102) as receiver:
        receiver.delay_s = 1.0
        a = two[0]
        headers = {"Authorization": f"Bearer {a.token()}"}
        hook = httpx.post(
            a.url + "/v1/webhooks", headers=headers, json={"url": receiver.url, "events": ["*"]}
        )
        assert hook.status_code == 201, hook.text
        for _ in range(3):
            made = httpx.post(a.url + "/v1/shells", headers=headers, json={"language": "bash"})
            assert made.status_code == 201, made.text
            httpx.delete(f"{a.url}/v1/shells/{made.json()['id']}", headers=headers)
        _until(lambda: len(receiver.received) >= 6, 30, "the deliveries")
        time.sleep(3)  # room for a duplicate to arrive
        ids = collections.Counter(item.headers[ID_HEADER] for item in receiver.received)
        assert max(ids.values()) == 1, f"attempted twice: {[i for i, n in ids.items() if n > 1]}"
        events = collections.Counter(
            (json.loads(item.body)["type"], json.loads(item.body)["event"]["id"])
            for item in receiver.received
        )
        assert max(events.values()) == 1, f"queued twice: {[e for e, n in events.items() if n > 1]}"
