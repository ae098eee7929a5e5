"""The Alembic migrations build exactly the schema the SQLAlchemy models describe."""

from __future__ import annotations

import importlib
import pkgutil

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import shells.store
from shells.store.repository import Store
from shells.store.tables import Base


def _import_every_store_module() -> None:
    """Table classes register themselves on ``Base.metadata`` when their module is imported."""
    for mod in pkgutil.iter_modules(shells.store.__path__):
        if mod.name != "migrations":
            importlib.import_module(f"shells.store.{mod.name}")


def test_migrated_schema_matches_the_models(record_url: str) -> None:
    _import_every_store_module()
    store = Store(record_url)
    store.migrate()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.close()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrating_twice_is_a_no_op(record_url: str) -> None:
    store = Store(record_url)
    store.migrate()
    store.migrate()
    store.close()
