"""The schema. Resources are stored as their API-shaped JSON document plus the columns that
lookups, ordering and uniqueness need; new resource kinds need no migration."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("arn", sa.String(1024), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    # Normalized name (lower case, spaces and underscores as hyphens), as ARNs spell it.
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.String(64), nullable=False, server_default=""),
    sa.Column("v_major", sa.Integer, nullable=False, server_default="0"),
    sa.Column("v_minor", sa.Integer, nullable=False, server_default="0"),
    sa.Column("v_patch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("build", sa.Integer, nullable=False, server_default="0"),
    # Another resource this one belongs to (an image's pipeline, a step's workflow execution).
    sa.Column("parent", sa.String(1024), nullable=True),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.UniqueConstraint("kind", "account", "name", "version", "build", name="uq_resource_identity"),
)
sa.Index("ix_resources_kind_account_name", resources.c.kind, resources.c.account, resources.c.name)
sa.Index("ix_resources_parent", resources.c.parent)
sa.Index(
    "ix_resources_scan",
    resources.c.kind,
    resources.c.account,
    resources.c.name,
    resources.c.v_major,
    resources.c.v_minor,
    resources.c.v_patch,
    resources.c.build,
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("operation", sa.String(64), primary_key=True),
    sa.Column("token", sa.String(128), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
)
