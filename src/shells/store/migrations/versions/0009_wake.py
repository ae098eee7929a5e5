"""shells get auto_resume (wake on request)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.add_column(sa.Column("auto_resume", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.drop_column("auto_resume")
