"""The TypeScript SDK's volumes and stored bucket credentials (``sdk-ts/test/src/storage.test.ts``), run
by Node's test runner against the session's real server with the SDK built as a user gets it."""

from __future__ import annotations

import shutil

import pytest

from .harness import ServerProcess
from .sdk_ts import Toolchain, build
from .test_sdk_typescript import node_test


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    if shutil.which("npm") is None:
        pytest.skip("needs npm (scripts/install-system-deps.sh installs it)")
    return build()


def test_volumes_and_bucket_credentials_from_typescript(server: ServerProcess, toolchain: Toolchain) -> None:
    report = node_test(toolchain, server, "storage")
    assert "# pass 2" in report and "# fail 0" in report, report
