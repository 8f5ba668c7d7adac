"""The API server fixtures (tests/api) and the build stack's Temporal server (tests/builds)."""

from tests.api.conftest import ib, server  # noqa: F401
from tests.builds.conftest import temporal  # noqa: F401
