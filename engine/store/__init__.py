"""Persistence: one SQLAlchemy Core store for SQLite (embedded default) and PostgreSQL."""

from engine.store.db import Record, Store, Tx

__all__ = ["Record", "Store", "Tx"]
