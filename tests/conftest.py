"""Fixtures both test trees use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kube import KubeAPI
from tests.support.kube import kube_api as kube_api_server
from tests.support.kube import missing as kube_missing
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.postgres import missing as postgres_missing
from tests.support.s3 import S3Server, s3_server
from tests.support.s3 import missing as s3_missing


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session; each test takes its own database from it."""
    reason = postgres_missing()
    if reason is not None:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def kube_api() -> Iterator[KubeAPI]:
    """One real Kubernetes API server (etcd + kube-apiserver) for the session."""
    reason = kube_missing()
    if reason is not None:
        pytest.skip(reason)
    with kube_api_server() as api:
        yield api


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS, authentication enforced) for the session; each test makes its
    own buckets on it."""
    reason = s3_missing()
    if reason is not None:
        pytest.skip(reason)
    with s3_server() as server:
        yield server


ON_KUBE = {"kube_api", "local_cluster"}
"""Fixtures that start a Kubernetes API (``local_cluster``: tests/e2e/local_cluster.py's own)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the Kubernetes API run last: its server may still be building (``make test``
    starts that build in the background) while everything else runs."""
    items.sort(key=lambda item: bool(ON_KUBE & set(getattr(item, "fixturenames", ()))))
