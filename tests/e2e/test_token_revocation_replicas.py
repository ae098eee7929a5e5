"""A token revoked through one control-plane replica is refused by the other, which had it cached,
within the bound docs/security.md states: two replica processes over one PostgreSQL record (the
revocation's NOTIFY reaches the other's listener; before it, the other kept answering for a second)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.kube import KubeAPI
from tests.support.postgres import PostgresServer
from tests.unit.test_token_revocations import REVOCATION_BOUND_S

from .test_cluster_duties import Replica, two_replicas


@pytest.fixture
def two(tmp_path: Path, postgres: PostgresServer, kube_api: KubeAPI) -> Iterator[list[Replica]]:
    with two_replicas(tmp_path, postgres.new_database("revocations"), kube_api) as made:
        yield made


def test_a_token_revoked_through_one_replica_is_refused_by_the_other(two: list[Replica]) -> None:
    a, b = two
    admin = {"Authorization": f"Bearer {a.token()}"}
    with httpx.Client(timeout=10) as http:
        for _ in range(5):
            made = http.post(
                a.url + "/v1/tokens", headers=admin, json={"principal": "eve", "scopes": ["shells.read"]}
            )
            assert made.status_code == 201, made.text
            token, token_id = made.json()["token"], made.json()["id"]
            mine = {"Authorization": f"Bearer {token}"}
            for _ in range(3):  # read through b: now in its cache
                assert http.get(b.url + "/v1/shells", headers=mine).status_code == 200
            revoked = http.delete(f"{a.url}/v1/tokens/{token_id}", headers=admin)
            assert revoked.status_code == 204, revoked.text
            answered = time.monotonic()
            while (seen := http.get(b.url + "/v1/shells", headers=mine)).status_code == 200:
                waited = time.monotonic() - answered
                assert waited < REVOCATION_BOUND_S, f"replica b still admits the token after {waited:.3f} s"
            assert seen.status_code == 401 and seen.json()["error"]["code"] == "credential_revoked", seen.text
