"""networking: private networks and members, blocked-connection log, exposed ports

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("networking",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False, index=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("cidr", sa.String(length=64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="uq_networks_tenant_name"),
    )
    op.create_table(
        "network_members",
        sa.Column("network_id", sa.String(length=64), sa.ForeignKey("networks.id"), primary_key=True),
        sa.Column("shell_id", sa.String(length=64), sa.ForeignKey("shells.id"), primary_key=True, index=True),
        sa.Column("address", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "blocked_attempts",
        sa.Column("shell_id", sa.String(length=64), primary_key=True),
        sa.Column("destination", sa.String(length=255), primary_key=True),
        sa.Column("port", sa.Integer(), primary_key=True),
        sa.Column("protocol", sa.String(length=16), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_blocked_shell_last", "blocked_attempts", ["shell_id", "last_seen"])
    op.create_table(
        "exposed_ports",
        sa.Column("shell_id", sa.String(length=64), sa.ForeignKey("shells.id"), primary_key=True),
        sa.Column("port", sa.Integer(), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exposed_ports")
    op.drop_index("ix_blocked_shell_last", table_name="blocked_attempts")
    op.drop_table("blocked_attempts")
    op.drop_table("network_members")
    op.drop_table("networks")
