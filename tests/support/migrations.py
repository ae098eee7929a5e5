"""Move a record to one Alembic revision (not the newest), to put rows there as an older instance
stored them and then watch the newer migrations upgrade them, or to take a newer schema back."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shells.store.repository import MIGRATIONS_DIR, Sealer, Store


def _config(store: Store, box: Sealer | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", store.url)
    cfg.attributes["box"] = box
    return cfg


def upgrade_to(store: Store, revision: str, box: Sealer | None = None) -> None:
    cfg = _config(store, box)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade_to(store: Store, revision: str, box: Sealer | None = None) -> None:
    cfg = _config(store, box)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
