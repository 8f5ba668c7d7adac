"""Long-lived things handlers use beyond the database (the build orchestrator, blob storage)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.settings import Config
from engine.store import Store


@dataclass
class Services:
    config: Config
    store: Store

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir
