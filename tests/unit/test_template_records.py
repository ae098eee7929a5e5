"""Two control replicas over one record register the same built-in template at the same moment
(the first create of a language on each): the second insert is a typed ``template_exists``, never an
unexpected database error, and a replica that meets it takes the record the other made."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shells.domain.errors import TemplateExists
from shells.domain.templates import TemplateRecord, TemplateStatus
from shells.runtime.templates.catalog import builtins
from shells.store.repository import Store
from shells.store.templates import TemplateStore


def test_a_builtin_recorded_by_another_replica_meanwhile_is_template_exists(migrated_url: str) -> None:
    meta = replace(builtins()["go:1"].meta(), size_bytes=0, created_at=datetime.now(UTC))
    first, second = Store(migrated_url), Store(migrated_url)
    try:
        TemplateStore(first).add(TemplateRecord(meta, TemplateStatus.READY))
        with pytest.raises(TemplateExists):
            TemplateStore(second).add(TemplateRecord(meta, TemplateStatus.READY))
        recorded = TemplateStore(second).get("go:1")
        assert recorded is not None and recorded.meta.name == "go:1"
    finally:
        first.close()
        second.close()
