"""Persistence of the instance's egress CA: one row, the certificate in the clear (every shell with
secrets is given it) and the key sealed by ``control.secret_box`` (the store never sees it in the
clear). The row is written once, by whichever control replica finds none first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .repository import Store, utcnow
from .tables import Base

_THE_CA = 1
"""The one row's key: a second insert collides with the first instead of adding another CA."""


class EgressCARow(Base):
    __tablename__ = "egress_ca"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cert_pem: Mapped[str] = mapped_column(Text)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The CA's PEM key, sealed with ``control.egress_ca.SEALED_AS``."""
    created_at: Mapped[datetime]


class EgressCAStore:
    """The one egress CA row; shares the engine and transactions of ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self) -> tuple[str, bytes] | None:
        """The CA's PEM certificate and sealed key, or None before any replica wrote them."""
        with self._store.tx() as s:
            row = s.scalars(select(EgressCARow).where(EgressCARow.id == _THE_CA)).first()
            return (row.cert_pem, row.sealed_key) if row is not None else None

    def add_if_absent(self, cert_pem: str, sealed_key: bytes) -> bool:
        """Write the CA unless a row is there already (another replica's, written meanwhile);
        whether this one was written."""
        try:
            with self._store.tx() as s:
                s.add(EgressCARow(id=_THE_CA, cert_pem=cert_pem, sealed_key=sealed_key, created_at=utcnow()))
        except IntegrityError:
            return False
        return True
