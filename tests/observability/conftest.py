"""The build stack for observability tests: the Temporal dev server and API server as real
processes (tests/builds/conftest.py), workers started by each test module."""

from __future__ import annotations

from tests.builds.conftest import temporal

__all__ = ["temporal"]
