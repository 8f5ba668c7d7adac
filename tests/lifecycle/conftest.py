"""The full stack (Temporal dev server, API server, control + docker worker) from tests/builds."""

from tests.builds.conftest import stack, temporal

__all__ = ["stack", "temporal"]
