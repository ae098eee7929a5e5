"""snapshots and templates say when they are durable in the object store and which blobs hold
them; shells may
mirror /workspace to a user's bucket (shell_syncs) (issue 19)

Revision ID: 0014
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("durable_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parts", sa.JSON(), nullable=True))
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("durable_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("parts", sa.JSON(), nullable=True))
    op.create_table(
        "shell_syncs",
        sa.Column("shell_id", sa.String(64), sa.ForeignKey("shells.id"), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(512), nullable=False),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(512), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("access_key_id", sa.String(256), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_shell_syncs_tenant", "shell_syncs", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_shell_syncs_tenant", "shell_syncs")
    op.drop_table("shell_syncs")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("parts")
        batch.drop_column("durable_at")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("parts")
        batch.drop_column("durable_at")
