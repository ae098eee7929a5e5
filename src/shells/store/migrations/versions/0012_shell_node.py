"""shells name the node that holds them (every call for a shell goes to that node)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.add_column(sa.Column("node", sa.String(64), nullable=False, server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.drop_column("node")
