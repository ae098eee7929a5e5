"""join the templates, networking and tenancy branches; shells get an idle timeout

Revision ID: 0005
Revises: 0002, 0003, 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = ("0002", "0003", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.add_column(sa.Column("idle_timeout_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shells") as batch:
        batch.drop_column("idle_timeout_s")
