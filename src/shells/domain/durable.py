"""What the object store holds of a snapshot or a template (docs/storage.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredPart:
    """One file of a snapshot in the object store: a blob named by its content's SHA-256."""

    name: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StoredPart:
        return cls(str(doc["name"]), str(doc["sha256"]), int(doc["size"]))
