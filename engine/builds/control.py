"""The control worker: runs the build workflows and the local activities that write their
progress to the store. It is the only worker that needs the database."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.builds.records import RecordActivities
from engine.builds.start_from_cli import CliStartActivities, StartImageBuildWorkflow
from engine.builds.workflow import ImageBuildWorkflow
from engine.store import Store
from workers.blobstore import BlobStore
from workers.contracts import CONTROL_QUEUE


def control_worker(client: Client, store: Store, blobs: BlobStore, region: str, account: str, registry: str) -> Worker:
    records = RecordActivities(store)
    starts = CliStartActivities(store, blobs, region, account, registry)
    # Our own packages hold only deterministic code on the workflow path (dataclasses and pure
    # functions); passing them through keeps one copy of each class, so payloads convert.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("engine", "workers", "components")
    )
    return Worker(
        client,
        task_queue=CONTROL_QUEUE,
        workflow_runner=runner,
        workflows=[ImageBuildWorkflow, StartImageBuildWorkflow],
        activities=[*records.all(), *starts.all()],
    )
