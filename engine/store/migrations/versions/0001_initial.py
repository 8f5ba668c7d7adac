"""Initial schema: resources and idempotency records.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("arn", sa.String(1024), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        sa.Column("v_major", sa.Integer, nullable=False, server_default="0"),
        sa.Column("v_minor", sa.Integer, nullable=False, server_default="0"),
        sa.Column("v_patch", sa.Integer, nullable=False, server_default="0"),
        sa.Column("build", sa.Integer, nullable=False, server_default="0"),
        sa.Column("parent", sa.String(1024), nullable=True),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.UniqueConstraint("kind", "account", "name", "version", "build", name="uq_resource_identity"),
    )
    op.create_index("ix_resources_kind_account_name", "resources", ["kind", "account", "name"])
    op.create_index("ix_resources_parent", "resources", ["parent"])
    op.create_table(
        "idempotency",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("operation", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(128), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency")
    op.drop_table("resources")
