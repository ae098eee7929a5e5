"""A webhook's signing secret is write-only and sealed at rest: after it is registered, no file of the
record (the database and its journal), no log and no answer (get, list, audit, an error) holds it,
yet every delivery is signed with it, before and after a server restart (the key file outside the
database opens it again)."""

from __future__ import annotations

import json
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_internet import FakeInternet
from tests.support.webhook_receiver import Received, WebhookReceiver

from .harness import ServerProcess, running_server
from .rest import error_of, rest_client, wait_for


@pytest.fixture(scope="module")
def sealed_server(data_root: Path) -> Iterator[ServerProcess]:
    with running_server(data_root / "webhook-secret", warm_pool=0) as srv:
        yield srv


def received_tests(receiver: WebhookReceiver) -> list[Received]:
    return [r for r in receiver.bodies() if json.loads(r.body)["type"] == "test"]


def record_files(server: ServerProcess) -> list[Path]:
    """The record (SQLite and its WAL) and the server's log: everything a backup or a reader of
    the data directory would see, short of the key file."""
    files = [p for p in server.data_dir.glob("shells.db*") if p.is_file()]
    return [*files, server.data_dir / "server.log"]


def test_the_secret_is_sealed_at_rest_and_still_signs_across_a_restart(
    sealed_server: ServerProcess, internet: FakeInternet
) -> None:
    secret = f"whsec-{secrets.token_hex(16)}"
    with (
        WebhookReceiver(internet.netns_path, internet.a, 9102) as receiver,
        rest_client(sealed_server) as api,
    ):
        bad = api.post("/v1/webhooks", json={"url": receiver.url, "events": ["nope"], "secret": secret})
        assert secret not in error_of(bad, 400, "invalid_request")["message"] and secret not in bad.text
        made = api.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"], "secret": secret})
        assert made.status_code == 201 and made.json()["secret"] == secret  # shown once, here
        hook_id = made.json()["id"]
        answers = [
            api.get(f"/v1/webhooks/{hook_id}"),
            api.get("/v1/webhooks"),
            api.get(f"/v1/webhooks/{hook_id}/deliveries"),
            api.get("/v1/audit"),
        ]
        for answer in answers:
            assert answer.status_code == 200 and secret not in answer.text, answer.request.url

        assert api.post(f"/v1/webhooks/{hook_id}/test").status_code == 202
        wait_for(lambda: len(received_tests(receiver)) == 1)
        assert received_tests(receiver)[0].signed_with(secret)

        key = sealed_server.data_dir / "secrets.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        for path in record_files(sealed_server):
            assert secret.encode() not in path.read_bytes(), path

        sealed_server.stop()
        sealed_server.start()
        assert api.post(f"/v1/webhooks/{hook_id}/test").status_code == 202
        wait_for(lambda: len(received_tests(receiver)) == 2)
        assert received_tests(receiver)[1].signed_with(secret)
        assert not received_tests(receiver)[1].signed_with(secret + "x")  # the check can fail
        for path in record_files(sealed_server):
            assert secret.encode() not in path.read_bytes(), path
        assert api.delete(f"/v1/webhooks/{hook_id}").status_code == 204
    with httpx.Client() as plain:
        assert plain.get(f"{sealed_server.url}/v1/webhooks").status_code == 401
