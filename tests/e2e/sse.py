"""A test client of the live feed (``GET /v1/events/stream``): a thread reads the stream and parses
Server-Sent Events into a queue, so a test waits for what it expects with a bounded wait."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

WAIT_S = 60.0


@dataclass(frozen=True)
class Message:
    event: str
    data: dict[str, Any]
    id: int | None


class FeedReader:
    def __init__(self, url: str, token: str, params: dict[str, Any] | None = None, **headers: str) -> None:
        self.messages: queue.Queue[Message | None] = queue.Queue()
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}", **headers}, timeout=None
        )
        self._stream = self._client.stream("GET", "/v1/events/stream", params=params)
        self.response = self._stream.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.response.status_code == 200:
            self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line == "":
                    if "data" in fields:
                        event_id = int(fields["id"]) if fields.get("id") else None
                        data = json.loads(fields["data"])
                        self.messages.put(Message(fields.get("event", "message"), data, event_id))
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.messages.put(None)  # the stream ended

    def next(self, wait_s: float = WAIT_S) -> Message | None:
        """The next message, or None when the stream has ended."""
        return self.messages.get(timeout=wait_s)

    def until(self, match: Callable[[Message], bool], wait_s: float = WAIT_S) -> list[Message]:
        """Every message up to and including the first that matches; fails if the stream ends first."""
        seen: list[Message] = []
        while True:
            message = self.next(wait_s)
            assert message is not None, f"the stream ended before the expected message; saw {seen}"
            seen.append(message)
            if match(message):
                return seen

    def close(self) -> None:
        self._stream.__exit__(None, None, None)
        self._client.close()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def about(shell_id: str, kind: str | None = None, outcome: str | None = None) -> Callable[[Message], bool]:
    """Matches a shell message of ``shell_id`` (with this event kind and outcome, when given)."""

    def match(m: Message) -> bool:
        if m.event != "shell" or m.data["event"]["shell_id"] != shell_id:
            return False
        event = m.data["event"]
        return (kind is None or event["kind"] == kind) and (outcome is None or event["outcome"] == outcome)

    return match


def running(shell_id: str) -> Callable[[Message], bool]:
    """Matches the message that shows ``shell_id`` running. A create claims a warm shell (one
    ``create`` event, running already) or boots one (``create``, then ``state``): both end here."""
    return lambda m: about(shell_id)(m) and m.data["shell"]["state"] == "running"
