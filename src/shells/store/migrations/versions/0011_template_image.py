"""templates: where an image template came from and how it runs (issue 22)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("templates", sa.Column("image", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("templates", "image")
