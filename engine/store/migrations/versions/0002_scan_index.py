"""Index for keyset pagination: lists walk resources in (kind, account, name, version, build) order.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index(
        "ix_resources_scan",
        "resources",
        ["kind", "account", "name", "v_major", "v_minor", "v_patch", "build"],
    )


def downgrade() -> None:
    op.drop_index("ix_resources_scan", "resources")
