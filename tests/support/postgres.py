"""A throwaway PostgreSQL database on the host's server (deploy/host-setup.sh starts it)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_DSN = os.environ.get("IMAGEBUILDER_TEST_PG", "postgresql://imagebuilder:imagebuilder@127.0.0.1:5432/imagebuilder")


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new database named `prefix`_<random>, as the SQLAlchemy URL our settings take; dropped
    (connections and all) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_DSN} (run deploy/host-setup.sh): {exc}")
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()
