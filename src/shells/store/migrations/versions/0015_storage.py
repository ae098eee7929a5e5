"""storage: tenant volumes and what each shell mounts (bucket mounts with sealed credentials, volumes)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False, index=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("live_name", sa.String(length=64), nullable=True),
        sa.Column("size_gib", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant", "live_name", name="uq_volumes_tenant_live_name"),
    )
    op.create_table(
        "shell_mounts",
        sa.Column("shell_id", sa.String(length=64), sa.ForeignKey("shells.id"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("volume_id", sa.String(length=64), nullable=True, index=True),
        sa.Column("bucket", sa.String(length=64), nullable=True),
        sa.Column("endpoint", sa.String(length=512), nullable=True),
        sa.Column("prefix", sa.String(length=512), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("shell_mounts")
    op.drop_table("volumes")
