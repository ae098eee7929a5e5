"""metering: usage intervals and each tenant's billing terms

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_intervals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shell_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("runtime", sa.String(length=16), nullable=False),
        sa.Column("shape", sa.String(length=32), nullable=False),
        sa.Column("vcpus_milli", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_usage_intervals_tenant_started", "usage_intervals", ["tenant", "started_at"])
    op.create_index("ix_usage_intervals_open", "usage_intervals", ["shell_id", "ended_at"])
    op.create_table(
        "tenant_billing",
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("free_tier_microusd", sa.BigInteger(), nullable=True),
        sa.Column("budget_microusd", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant"),
    )


def downgrade() -> None:
    op.drop_table("tenant_billing")
    op.drop_index("ix_usage_intervals_open", table_name="usage_intervals")
    op.drop_index("ix_usage_intervals_tenant_started", table_name="usage_intervals")
    op.drop_table("usage_intervals")
