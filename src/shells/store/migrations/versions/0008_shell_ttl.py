"""shells get a hard time-to-live (expires_at) and what it does (on_timeout: kill or pause)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("on_timeout", sa.String(8), nullable=False, server_default="kill"))


def downgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.drop_column("on_timeout")
        batch.drop_column("expires_at")
