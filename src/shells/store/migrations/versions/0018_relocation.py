"""nodes can be cordoned; a paused or stopped shell's saved state in the object store, with the
marks of a move between nodes (issues 18 and 19)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_cordons",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("cordoned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_table(
        "shell_saves",
        sa.Column("shell_id", sa.String(64), sa.ForeignKey("shells.id"), primary_key=True),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("taken_on", sa.String(64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=False),
        sa.Column("moving_to", sa.String(64), nullable=True),
        sa.Column("left_on", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("shell_saves")
    op.drop_table("node_cordons")
