"""An executor worker: hosts the step activities of the executors this host has.

It listens on each executor's pool queue (new instances) and on its own host queue (steps on
instances it holds). The host id is stable across restarts (kept in the state directory), so a
worker that comes back after a crash picks up the steps of the instances it still holds.
"""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from workers.activities import StepActivities
from workers.blobstore import BlobStore
from workers.contracts import host_queue, pool_queue
from workers.executors.base import ExecutorSettings, load_executors


def stable_host_id(state_dir: Path) -> str:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "host-id"
    if not path.exists():
        path.write_text(f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}\n")
    return path.read_text().strip()


def executor_workers(
    client: Client,
    kinds: list[str],
    state_dir: Path,
    blobs: BlobStore,
    registry: str,
    host_id: str | None = None,
    max_concurrent: int = 2,
    export_dir: Path | None = None,
    s3_endpoint_url: str = "",
    import_dir: Path | None = None,
) -> list[Worker]:
    host = host_id or stable_host_id(state_dir)
    settings = ExecutorSettings(
        host_id=host,
        state_dir=state_dir,
        blobs=blobs,
        registry=registry,
        max_concurrent=max_concurrent,
        export_dir=export_dir,
        s3_endpoint_url=s3_endpoint_url,
        import_dir=import_dir,
    )
    executors = load_executors(kinds, settings)
    activities = StepActivities(executors, blobs).all()
    workers = []
    for kind in kinds:
        # Pool queue: only as many launches as this host has room for builds.
        workers.append(
            Worker(
                client,
                task_queue=pool_queue(kind),
                activities=activities,
                max_concurrent_activities=max_concurrent,
                activity_executor=ThreadPoolExecutor(max_concurrent * 4),
            )
        )
        workers.append(
            Worker(
                client,
                task_queue=host_queue(kind, host),
                activities=activities,
                max_concurrent_activities=max_concurrent * 4,
                activity_executor=ThreadPoolExecutor(max_concurrent * 8),
            )
        )
    return workers
