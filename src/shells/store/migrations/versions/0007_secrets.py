"""secrets: tenant secrets (sealed values) and the secrets each shell was created with

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False, index=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("hosts", sa.JSON(), nullable=False),
        sa.Column("header", sa.String(length=64), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="uq_secrets_tenant_name"),
    )
    op.create_table(
        "shell_secrets",
        sa.Column("shell_id", sa.String(length=64), sa.ForeignKey("shells.id"), primary_key=True),
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("placeholder", sa.String(length=128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shell_secrets")
    op.drop_table("secrets")
