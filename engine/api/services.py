"""Long-lived things handlers use beyond the database: the build service and blob storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from engine.settings import Config
from engine.store import Store
from workers.blobstore import BlobStore, open_blob_store


@dataclass
class Services:
    config: Config
    store: Store
    _gateway: object | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @cached_property
    def blobs(self) -> BlobStore:
        return open_blob_store(self.config.data_dir / "store", self.config.store_url, self.config.s3_endpoint_url)

    @cached_property
    def temporal(self):  # type: ignore[no-untyped-def]  # import deferred: the API starts without Temporal
        from engine.builds.client import TemporalGateway

        return TemporalGateway(self.config.temporal_address, self.config.temporal_namespace)
