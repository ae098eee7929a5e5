"""Bring a record to one Alembic revision (not the newest), to put rows there as an older instance
stored them and then watch the newer migrations upgrade them."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shells.store.repository import MIGRATIONS_DIR, Store


def upgrade_to(store: Store, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", store.url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
