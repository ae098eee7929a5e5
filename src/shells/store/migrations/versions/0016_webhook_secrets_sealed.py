"""webhook signing secrets sealed with the instance's secrets key, like tenant secrets

Revision ID: 0016
Revises: 0015

Each row's clear ``secret`` is sealed into ``sealed`` (AES-GCM under the key file outside the
database, associated data: the tenant and ``webhook/<id>``) and the clear column is dropped. The
box comes from ``Store.migrate(box)``; a record with webhooks and no box is refused, so no secret is
lost or left in the clear. The name rule is frozen here (``domain.webhooks.sealing_name`` today).
"""

import sqlalchemy as sa
from alembic import op

from shells.store.repository import Sealer

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_webhooks = sa.table(
    "webhooks",
    sa.column("id", sa.String()),
    sa.column("tenant", sa.String()),
    sa.column("secret", sa.String()),
    sa.column("sealed", sa.LargeBinary()),
)


def _box() -> Sealer:
    config = op.get_context().config
    box: Sealer | None = config.attributes.get("box") if config is not None else None
    if box is None:
        raise RuntimeError(
            "migration 0016 seals webhook secrets and needs the instance's secrets key: "
            "run it through the server (Store.migrate(box))"
        )
    return box


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_webhooks.c.id, _webhooks.c.tenant, _webhooks.c.secret)).all()
    # Sealed before any change: a refusal (no key) leaves the table as it was, even on SQLite,
    # whose DDL is not undone with the transaction here.
    box = _box() if rows else None
    sealed = (
        {webhook_id: box.seal(tenant, f"webhook/{webhook_id}", secret) for webhook_id, tenant, secret in rows}
        if box
        else {}
    )
    # Added with an empty default so existing rows satisfy NOT NULL; each gets its sealed value
    # below, and every new row is written with one.
    op.add_column("webhooks", sa.Column("sealed", sa.LargeBinary(), nullable=False, server_default=""))
    for webhook_id, value in sealed.items():
        conn.execute(_webhooks.update().where(_webhooks.c.id == webhook_id).values(sealed=value))
    op.drop_column("webhooks", "secret")


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_webhooks.c.id, _webhooks.c.tenant, _webhooks.c.sealed)).all()
    box = _box() if rows else None
    clear = (
        {webhook_id: box.open(tenant, f"webhook/{webhook_id}", sealed) for webhook_id, tenant, sealed in rows}
        if box
        else {}
    )
    op.add_column("webhooks", sa.Column("secret", sa.String(length=256), nullable=False, server_default=""))
    for webhook_id, value in clear.items():
        conn.execute(_webhooks.update().where(_webhooks.c.id == webhook_id).values(secret=value))
    op.drop_column("webhooks", "sealed")
