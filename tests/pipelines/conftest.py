"""The Temporal dev server fixture of the build tests, for the schedule tests here."""

from tests.builds.conftest import temporal  # noqa: F401  (a fixture, used by name)
