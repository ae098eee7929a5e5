"""egress CA: the instance's one egress CA in the record (certificate, sealed key), shared by every
control replica instead of each replica's own ``data_dir/egress-ca``

Revision ID: 0020_egress_ca
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_egress_ca"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "egress_ca",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("egress_ca")
