"""Webhook signing secrets are sealed with the instance's secrets key, like tenant secrets: migration
0016 seals the rows an older instance stored in the clear (SQLite and PostgreSQL), and a webhook made
now never reaches the record in the clear, in its row or in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

from shells.control.secret_box import SecretBox, load_or_create_key
from shells.control.service import Control
from shells.domain.principal import Principal, Scope
from shells.domain.webhooks import sealing_name
from shells.runtime.network.dataplane import HostNetwork
from shells.settings import Settings
from shells.store.repository import Store
from tests.support.migrations import downgrade_to, upgrade_to

OLD_SECRET = "an-old-secret-kept-in-the-clear"
NEW_SECRET = "a-new-secret-that-must-stay-sealed"
ADMIN = Principal("admin", "default", frozenset({Scope.TENANT_ADMIN.value, Scope.READ.value}))


def _old_webhook(store: Store) -> None:
    """A webhook and one delivery as revision 0011 stored them: the secret in the clear."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks (id, tenant, url, events, secret, cursor, created_at, created_by) "
                "VALUES ('wh_old', 'default', 'http://198.51.100.11/hook', '{\"names\": [\"created\"]}', "
                ":secret, 0, :now, 'admin')"
            ),
            {"secret": OLD_SECRET, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO webhook_deliveries (webhook_id, event, payload, state, attempts, created_at, "
                "next_at, last_error) VALUES ('wh_old', 'test', '{}', 'pending', 0, :now, :now, '')"
            ),
            {"now": now},
        )


def _record_dump(store: Store) -> str:
    """Every value of every row of every table, as text (bytes decoded leniently)."""
    out: list[str] = []
    with store.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        out.append(bytes(value).decode("latin-1"))
                    else:
                        out.append(str(value))
    return "\n".join(out)


def test_migration_0016_seals_the_secrets_an_older_instance_kept_in_the_clear(
    tmp_path: Path, record_url: str
) -> None:
    store = Store(record_url)
    try:
        upgrade_to(store, "0011")
        _old_webhook(store)
        with pytest.raises(RuntimeError, match="secrets key"):
            store.migrate()  # no key: refused rather than leave the secret behind or lose it
        box = SecretBox(load_or_create_key(tmp_path / "secrets.key"))
        store.migrate(box)
        columns = {c["name"] for c in inspect(store.engine).get_columns("webhooks")}
        assert "secret" not in columns and "sealed" in columns
        assert OLD_SECRET not in _record_dump(store)
        with store.engine.connect() as conn:
            sealed = conn.execute(text("SELECT sealed FROM webhooks WHERE id = 'wh_old'")).scalar_one()
            pending = conn.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar_one()
        assert box.open("default", sealing_name("wh_old"), bytes(sealed)) == OLD_SECRET
        assert pending == 1  # the outbox survived the change of its webhook's table

        downgrade_to(store, "0011", box)  # and back: the clear column again, with the same secret
        with store.engine.connect() as conn:
            clear = conn.execute(text("SELECT secret FROM webhooks WHERE id = 'wh_old'")).scalar_one()
        assert clear == OLD_SECRET
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_new_webhook_secret_reaches_the_record_only_sealed(tmp_path: Path, record_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=record_url)
    store = Store(settings.db_url)
    try:
        control = Control(settings, store, [], HostNetwork(settings))
        store.migrate(control.secrets.box)
        control.webhooks.own = list  # no host network here: no addresses of its own to refuse
        made = await control.webhooks.create(ADMIN, "http://198.51.100.11/hook", ["created"], NEW_SECRET)
        assert made["secret"] == NEW_SECRET  # the create's answer, the only time it is shown
        listed = [w.to_public() for w in control.webhooks.all(ADMIN)]
        assert NEW_SECRET not in str(listed) and NEW_SECRET not in repr(control.webhooks.all(ADMIN))
        assert NEW_SECRET not in _record_dump(store)
        rec = control.webhooks.get(ADMIN, made["id"])
        assert NEW_SECRET.encode() not in rec.sealed
        # The key file is the only way back: another key does not open it.
        other = SecretBox(load_or_create_key(tmp_path / "other.key"))
        with pytest.raises(Exception, match="does not open"):
            other.open(rec.tenant, sealing_name(rec.id), rec.sealed)
        assert control.secrets.box.open(rec.tenant, sealing_name(rec.id), rec.sealed) == NEW_SECRET
    finally:
        store.close()


@pytest.mark.anyio
async def test_a_secret_that_no_longer_opens_fails_the_attempt_with_a_reason(
    tmp_path: Path, record_url: str
) -> None:
    """The key file replaced: nothing is sent unsigned; the log says why and the delivery waits."""
    settings = Settings(data_dir=tmp_path, database_url=record_url)
    store = Store(settings.db_url)
    try:
        control = Control(settings, store, [], HostNetwork(settings))
        store.migrate(control.secrets.box)
        hooks = control.webhooks
        hooks.own = list
        made = await hooks.create(ADMIN, "http://198.51.100.11/hook", ["created"], NEW_SECRET)
        queued = hooks.send_test(ADMIN, made["id"])
        hooks.box = SecretBox(load_or_create_key(tmp_path / "another.key"))
        hooks._client = httpx.AsyncClient()  # never used: the attempt stops before any connection
        try:
            await hooks._attempt(hooks.get(ADMIN, made["id"]), queued)
        finally:
            await hooks._client.aclose()
        [logged] = hooks.deliveries(ADMIN, made["id"], 10)
        assert logged.state == "pending" and logged.attempts == 1 and logged.last_status is None
        assert "does not open" in logged.last_error and NEW_SECRET not in logged.last_error
    finally:
        store.close()
