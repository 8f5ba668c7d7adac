"""The control worker's background loops, run beside its Temporal worker: event delivery to the
webhook endpoints and image scans. Both work from rows of the store (the outbox and scan jobs),
so nothing is lost when the worker stops; they start again with it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from temporalio.worker import Worker

from engine.events.delivery import EventDelivery
from engine.events.endpoints import EndpointsFile
from engine.scanning.database import DatabaseCache
from engine.scanning.jobs import ScanService
from engine.scanning.scanners import configured
from engine.settings import Config
from engine.store import Store
from workers.blobstore import BlobStore

Loop = Callable[[], Coroutine[Any, Any, None]]


class WorkerWithBackground(Worker):
    """A Temporal worker whose ``run`` also runs the given loops, and stops them with it."""

    def __init__(self, background: Sequence[Loop], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._background = list(background)

    async def run(self) -> None:
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(loop()) for loop in self._background]
        try:
            await super().run()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def control_loops(store: Store, config: Config) -> list[Loop]:
    """Event delivery and scans as ``config`` sets them up; a bad endpoints file or scanner
    setting stops the worker at start with the reason."""
    endpoints = EndpointsFile(Path(config.event_endpoints) if config.event_endpoints else None)
    cache = DatabaseCache()
    configured(config.scanners, config.vulnerability_database, cache)  # fail now, not at the first scan

    def scanners() -> list[Any]:
        return configured(config.scanners, config.vulnerability_database, cache)

    blobs = BlobStore(config.data_dir / "store")  # where the inventory collector writes
    return [EventDelivery(store, endpoints).run, ScanService(store, scanners, blobs).run]
