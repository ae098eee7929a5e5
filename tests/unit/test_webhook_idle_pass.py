"""The webhook dispatcher's pass is one cheap query while no webhook exists anywhere, and does its
whole work again as soon as one exists, whichever replica made it (SQLite and PostgreSQL); the
mounts of a shell read as plain rows come back as the ORM read them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

from shells.control.context import ControlContext
from shells.control.secret_box import SecretBox
from shells.control.webhook_target import OwnAddresses
from shells.control.webhooks import Webhooks
from shells.domain.isolation import Language, Runtime
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shell import ShellRecord
from shells.domain.states import ShellState
from shells.domain.webhooks import WebhookRecord
from shells.store.repository import Store
from shells.store.storage import MountRow, StorageStore
from shells.store.webhooks import WebhookStore


def _hook(webhook_id: str) -> WebhookRecord:
    return WebhookRecord(
        id=webhook_id,
        tenant="default",
        url="http://198.51.100.11/hook",
        events=("created",),
        sealed=b"sealed",
        created_at=datetime.now(UTC),
        created_by="admin",
    )


class _Counting(Webhooks):
    """The dispatcher with its two halves counted instead of run."""

    passes = 0

    def collect(self, now: datetime | None = None) -> int:
        self.passes += 1
        return 0

    def dispatch(self) -> None:
        self.passes += 1


def test_the_pass_stops_at_one_query_while_no_webhook_exists(migrated_url: str) -> None:
    here, other = Store(migrated_url), Store(migrated_url)  # two replicas on one record
    try:
        ctx = cast(ControlContext, SimpleNamespace(store=here))
        dispatcher = _Counting(ctx, cast(OwnAddresses, None), cast(SecretBox, None))
        assert not WebhookStore(here).any_exist()
        dispatcher.run_pass()
        assert dispatcher.passes == 0
        WebhookStore(other).add(_hook("wh_a"))  # made on the other replica
        assert WebhookStore(here).any_exist()
        dispatcher.run_pass()
        assert dispatcher.passes == 2
        WebhookStore(other).remove("wh_a")
        assert not WebhookStore(here).any_exist()
        dispatcher.run_pass()
        assert dispatcher.passes == 2
    finally:
        here.close()
        other.close()


def test_mounts_read_as_plain_rows_keep_their_types_and_order(migrated_url: str) -> None:
    store = Store(migrated_url)
    try:
        storage = StorageStore(store)
        assert storage.mounts_of("sh_none") == []
        now = datetime.now(UTC)
        store.add_shell(
            ShellRecord(
                id="sh_1", tenant="default", owner="alice", name="one", state=ShellState.CREATING,
                runtime=Runtime.CONTAINER, language=Language.PYTHON, template="python:1",
                network=NetworkAccess(NetworkMode.SEALED), shape="s-1vcpu-512mb", region="local",
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
        rows = [
            MountRow(1, "/data", True, bucket="d", endpoint="http://e", prefix=None, sealed=b"\x01"),
            MountRow(0, "/bucket", False, bucket="b", endpoint="http://e", prefix="p/", sealed=b"\x00s"),
        ]
        storage.give("sh_1", rows, [])
        found = storage.mounts_of("sh_1")
        assert found == sorted(rows, key=lambda r: r.position)
        assert isinstance(found[1].read_only, bool) and isinstance(found[0].sealed, bytes)
    finally:
        store.close()
