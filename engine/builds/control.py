"""The control worker: runs the build workflows and the local activities that write their
progress to the store. It is the only worker that needs the database."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine import settings
from engine.builds.records import RecordActivities
from engine.builds.start_from_cli import CliStartActivities, StartImageBuildWorkflow
from engine.builds.workflow import ImageBuildWorkflow
from engine.events.background import WorkerWithBackground, control_loops
from engine.lifecycle.activities import LifecycleActivities
from engine.lifecycle.schedules import reconcile
from engine.lifecycle.workflow import LifecycleExecutionWorkflow
from engine.pipelines.reconciler import start_reconciling
from engine.pipelines.run import ImagePipelineRunWorkflow, PipelineActivities
from engine.pipelines.schedules import DEFAULT_CATCHUP
from engine.store import Store
from workers.blobstore import BlobStore
from workers.contracts import CONTROL_QUEUE


def control_worker(
    client: Client,
    store: Store,
    blobs: BlobStore,
    region: str,
    account: str,
    registry: str,
    pipeline_catchup: timedelta = DEFAULT_CATCHUP,
    config: settings.Config | None = None,
) -> Worker:
    """``config``: the settings the event and scan loops use (the worker's flags, env and config
    file); without it they are read from the environment and config file alone."""
    records = RecordActivities(store, blobs)
    starts = CliStartActivities(store, blobs, region, account, registry)
    lifecycle = LifecycleActivities(store, blobs, registry)
    _reconcile_lifecycle_schedules(client, store)
    pipelines = PipelineActivities(store, blobs, registry, pipeline_catchup)
    start_reconciling(client, store, pipeline_catchup)
    # Our own packages hold only deterministic code on the workflow path (dataclasses and pure
    # functions); passing them through keeps one copy of each class, so payloads convert.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("engine", "workers", "components")
    )
    # Event delivery and image scans run beside the worker (engine/events/background.py).
    return WorkerWithBackground(
        control_loops(store, config if config is not None else settings.load()),
        client,
        task_queue=CONTROL_QUEUE,
        workflow_runner=runner,
        workflows=[ImageBuildWorkflow, StartImageBuildWorkflow, LifecycleExecutionWorkflow, ImagePipelineRunWorkflow],
        activities=[*records.all(), *starts.all(), *lifecycle.all(), *pipelines.all()],
    )


_background: set[asyncio.Task[None]] = set()


def _reconcile_lifecycle_schedules(client: Client, store: Store) -> None:
    """Policies changed while Temporal was unreachable get their daily schedule once the control
    worker (which has both) starts."""

    async def run() -> None:
        try:
            synced = await reconcile(client, store)
            if synced:
                logging.info("lifecycle: %d enabled policies have their daily schedule", synced)
        except Exception as exc:
            logging.warning("lifecycle: could not reconcile policy schedules: %s", exc)

    try:
        task = asyncio.get_running_loop().create_task(run())
    except RuntimeError:
        return  # built outside an event loop (nothing to run it on)
    _background.add(task)
    task.add_done_callback(_background.discard)
