"""An executor worker: hosts the step activities of the executors this host has.

It listens on each executor's pool queue (new instances) and on its own host queue (steps on
instances it holds). The host id is stable across restarts (kept in the state directory), so a
worker that comes back after a crash picks up the steps of the instances it still holds.
A launch is taken only if the instance fits the host's capacity (workers/capacity.py); the
reservations are kept in the state directory, and a sweep beside the workers removes what the
host still holds for builds that ended or moved to another host.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from workers.activities import StepActivities
from workers.blobstore import BlobStore
from workers.capacity import Capacity, Ledger, Placement
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
    capacity_limits: tuple[int, int, int] = (0, 0, 0),
) -> list[Worker]:
    """The workers of this host; called with an event loop running, it also starts the sweep.

    capacity_limits: vCPUs, MiB of memory and GiB of disk the instances may hold (0: the host's).
    """
    host = host_id or stable_host_id(state_dir)
    capacity = Capacity.of_host(state_dir, max_concurrent, *capacity_limits)
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
    placement = Placement(Ledger(state_dir, capacity, host), StepActivities(executors, blobs))
    activities = placement.activities()
    with contextlib.suppress(RuntimeError):  # no loop (a caller that only builds the workers): no sweep
        _sweeps.add(asyncio.get_running_loop().create_task(placement.sweep_forever(client)))
    workers = []
    for kind in kinds:
        # Pool queue: launches (each checked against the capacity), and the work on images in
        # the shared store. A launch that does not fit fails at once (NoCapacity) and goes back.
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
                # Generous: the ledger bounds the instances, and a step left waiting here for a
                # slot would look like a dead host to its build (schedule-to-start timeout).
                max_concurrent_activities=max(16, max_concurrent * 8),
                activity_executor=ThreadPoolExecutor(max_concurrent * 8),
            )
        )
    return workers


#: The running sweeps (a task nobody references may be collected before it ends).
_sweeps: set[asyncio.Task[None]] = set()
