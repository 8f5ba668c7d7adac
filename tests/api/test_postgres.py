"""The same API tests with the server on PostgreSQL instead of the embedded SQLite file.

Each run gets a throwaway database on the local PostgreSQL that deploy/host-setup.sh starts
(role imagebuilder, CREATEDB). The test functions are the SQLite suite's, collected again
here with this module's `server` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.api.test_components import (
    test_bad_documents_and_versions,
    test_create_get_and_normalized_names,
    test_idempotency_and_dry_run,
    test_list_filters_and_pages,
    test_policy_tags_and_delete,
    test_wildcards_resolve_to_newest,
)
from tests.api.test_wire import test_concurrent_writers_lose_nothing, test_one_client_token_raced_creates_one_resource
from tests.support.postgres import throwaway_database

__all__ = [
    "test_bad_documents_and_versions",
    "test_concurrent_writers_lose_nothing",
    "test_create_get_and_normalized_names",
    "test_idempotency_and_dry_run",
    "test_list_filters_and_pages",
    "test_one_client_token_raced_creates_one_resource",
    "test_policy_tags_and_delete",
    "test_wildcards_resolve_to_newest",
]

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with throwaway_database("ib_test") as url:
        srv = start_server(tmp_path_factory.mktemp("api-pg"), database_url=url)
        try:
            yield srv
        finally:
            stop_server(srv)


def test_server_really_uses_postgres(server: Server) -> None:
    assert not (server.data_dir / "imagebuilder.sqlite").exists()
