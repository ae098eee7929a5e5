"""The handler tasks of an asyncio stream server, so that closing the server can cut them.

``asyncio.Server.close`` stops accepting but leaves running handlers alone (3.11), and a cancelled
handler task makes 3.11's ``StreamReaderProtocol`` log "Exception in callback … CancelledError". So
each handler runs through ``Connections.serve``, which registers it and ends it quietly when ``cut``
cancels it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Connections:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, handler: Coroutine[Any, Any, None]) -> None:
        """Run ``handler`` (a connection's whole life) as a registered, cuttable handler."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await handler
        except asyncio.CancelledError:
            pass  # cut by close(): the task is the handler's own, nobody else awaits it
        finally:
            self._tasks.discard(task)

    async def cut(self) -> None:
        """Cancel every running handler and wait until they have ended."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
