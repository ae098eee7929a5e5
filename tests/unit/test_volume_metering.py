"""Volume storage is metered per GiB-hour by tenant (docs/storage.md): each volume's size times the
hours it existed inside the report's window, never beyond now (a window that ends in the future
counts no hours yet to come), deleted volumes until their deletion, another tenant's never; on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from shells.control.context import ControlContext
from shells.control.metering import Metering
from shells.control.secret_box import SecretBox
from shells.control.storage import Storage
from shells.domain.principal import ADMIN_SCOPES, Principal
from shells.domain.tenancy import TenantRecord
from shells.settings import Settings
from shells.store.repository import EventDraft, Store
from shells.store.storage import VolumeRow
from tests.support.clock import ManualClock

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
ADMIN = Principal("admin", "default", ADMIN_SCOPES)


@pytest.fixture
def store(record_url: str) -> Iterator[Store]:
    s = Store(record_url, clock=ManualClock(NOW))
    s.migrate()
    yield s
    s.close()


def volume(vid: str, tenant: str, size_gib: int, made_h: float, deleted_h: float | None = None) -> VolumeRow:
    """A volume made ``made_h`` hours before NOW (deleted ``deleted_h`` hours before it, if given)."""
    deleted = None if deleted_h is None else NOW - timedelta(hours=deleted_h)
    return VolumeRow(
        id=vid,
        tenant=tenant,
        name=vid,
        live_name=None if deleted else vid,
        size_gib=size_gib,
        created_at=NOW - timedelta(hours=made_h),
        deleted_at=deleted,
    )


def test_volume_gib_hours_per_tenant_stop_at_now_and_at_deletion(store: Store, tmp_path: Path) -> None:
    with store.tx() as s:
        s.add(volume("gone", "default", 2, made_h=10, deleted_h=4))  # 2 GiB x 6 h
        s.add(volume("live", "default", 3, made_h=2))  # 3 GiB x 2 h, so far
        s.add(volume("theirs", "other", 100, made_h=5))  # another tenant's
    made = EventDraft(tenant="other", shell_id=None, principal="t", door="test", kind="tenant", action="t")
    store.tenancy.add_tenant(TenantRecord("other", {}, NOW), made)
    ctx = ControlContext(Settings(data_dir=tmp_path), store, {})
    storage = Storage(ctx, SecretBox(bytes(32)), None, list)
    metering = Metering(ctx, list, storage.gib_hours)

    day = metering.usage(
        ADMIN, start=(NOW - timedelta(days=1)).isoformat(), end=(NOW + timedelta(days=1)).isoformat()
    )
    assert day.volume_gib_hours == Decimal(18)
    assert day.to_public()["volume_gib_hours"] == "18.0000"
    # a window that cuts both: 2 GiB x 1 h of "gone" and 3 GiB x 1 h of "live"
    cut = metering.usage(
        ADMIN, start=(NOW - timedelta(hours=5)).isoformat(), end=(NOW - timedelta(hours=1)).isoformat()
    )
    assert cut.volume_gib_hours == Decimal(5)
    theirs = metering.usage(ADMIN, tenant="other", start=(NOW - timedelta(days=1)).isoformat())
    assert theirs.volume_gib_hours == Decimal(500)
