"""bucket credentials: a tenant's S3 key pairs stored once (secret sealed) and named by mounts and
syncs; volumes kept in the object store (the blob of their last upload, its version, when durable)

Revision ID: 0019
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bucket_credentials",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("tenant", sa.String(length=64), nullable=False, index=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("access_key_id", sa.String(length=256), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "name", name="uq_bucket_credentials_tenant_name"),
    )
    op.add_column("volumes", sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("volumes", sa.Column("blob", sa.String(length=64), nullable=True))
    op.add_column("volumes", sa.Column("blob_bytes", sa.BigInteger(), nullable=True))
    op.add_column("volumes", sa.Column("durable_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("volumes") as batch:
        for column in ("durable_at", "blob_bytes", "blob", "version"):
            batch.drop_column(column)
    op.drop_table("bucket_credentials")
