"""Every test of ``test_node_shells`` again, with the control plane reaching the fake node through
a node agent: each backend call (create, exec streams, files, pause, resume, fork, builds with
their progress, errors) crosses the authenticated node RPC and must come back the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from ..support.inprocess import Instance, serving
from ..support.remote_node import agent_serving
from .test_node_shells import *  # noqa: F403  (the same tests, collected again here)


@pytest.fixture
async def instance(tmp_path: Path) -> AsyncIterator[Instance]:
    with ExitStack() as stack:
        async with serving(
            tmp_path, through=lambda fake: stack.enter_context(agent_serving(fake))
        ) as running:
            yield running
