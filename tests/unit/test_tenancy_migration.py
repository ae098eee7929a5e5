"""An instance made before tenancy upgrades in place: its events keep their rows, and its admin token
(minted in the old format) keeps working, now as the platform admin of tenant ``default``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from shells.control.service import Control
from shells.domain.audit import AuditQuery
from shells.runtime.network.dataplane import HostNetwork
from shells.settings import Settings
from shells.store.repository import Store
from tests.support.migrations import upgrade_to


def test_an_instance_from_before_tenancy_upgrades_in_place(tmp_path: Path, record_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=record_url)
    store = Store(settings.db_url)
    try:
        upgrade_to(store, "0001")
        old_token = "shl_" + "A" * 43  # the format of the first admin tokens
        now = datetime.now(UTC).replace(tzinfo=None)
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tokens (id, tenant, principal, token_hash, prefix, scopes, created_at) "
                    "VALUES ('tok_old', 'default', 'admin', :hash, :prefix, :scopes, :now)"
                ),
                {
                    "hash": hashlib.sha256(old_token.encode()).hexdigest(),
                    "prefix": old_token[:10],
                    "scopes": '{"scopes": ["platform.admin", "shells.read", "tenant.admin"]}',
                    "now": now,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO events (at, tenant, shell_id, principal, door, kind, action, outcome, "
                    "message, details) VALUES (:now, 'default', 'sh_old', 'admin', 'rest', 'create', "
                    "'create', 'ok', '', '{}')"
                ),
                {"now": now},
            )
        settings.admin_token_path.write_text(old_token + "\n")
        settings.admin_token_path.chmod(0o600)

        control = Control(settings, store, [], HostNetwork(settings))
        store.migrate()
        assert control.auth.ensure_admin_token(settings.admin_token_path) == old_token
        admin = control.auth.principal(f"Bearer {old_token}")
        assert (admin.id, admin.tenant) == ("admin", "default")
        created = control.tenancy.create_tenant(admin, {"name": "acme"})
        assert created["name"] == "acme"
        trail = control.audit.search(admin, AuditQuery())
        first = trail[0]
        assert (first.shell_id, first.target, first.request_id) == ("sh_old", None, None)
        assert (
            store.tenancy.get_tenant("default") is not None
            and store.tenancy.get_principal("default", "admin") is not None
        )
    finally:
        store.close()
