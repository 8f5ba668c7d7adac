"""Helpers shared by tests (plain modules, importable by name)."""
