"""The API server's line to Temporal: start, cancel and signal builds from synchronous handlers.

Handlers run on threads; the Temporal client is asyncio. One background event loop owns the
client and handlers submit coroutines to it. A Temporal that is down is the caller's
ServiceUnavailableException, never a hung request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from engine.api.errors import ApiError
from engine.builds.model import WORKFLOW_NAME, BuildInput, StepActionSignal, workflow_id
from engine.observability.process import connect_client

if TYPE_CHECKING:
    from engine.pipelines.model import PipelineRunInput
    from engine.pipelines.schedules import PipelineSchedule
from workers.contracts import CONTROL_QUEUE

if TYPE_CHECKING:
    from engine.lifecycle.model import LifecycleRunRequest

T = TypeVar("T")
CALL_TIMEOUT = 15.0
#: How many times (0.25 s apart) a rerun waits for the previous run of its workflow id to close.
RERUN_WAITS = 40


class TemporalGateway:
    def __init__(self, address: str, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="temporal-client", daemon=True)
        self._thread.start()
        self._client: Client | None = None

    def _call(self, make: Callable[[Client], Awaitable[T]]) -> T:
        async def run() -> T:
            if self._client is None:
                # Search attributes on builds, tracing: engine/observability.
                self._client = await connect_client(self.address, self.namespace)
            return await make(self._client)

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result(CALL_TIMEOUT)
        except (RPCError, OSError, RuntimeError, TimeoutError) as exc:
            future.cancel()
            raise ApiError(
                "ServiceUnavailableException", f"the build service (Temporal at {self.address}) is not reachable: {exc}"
            ) from None

    def start_build(self, build: BuildInput, rerun: bool = False) -> str:
        """Start the build's workflow. Its id is the image's, and a failed, cancelled, terminated
        or timed-out run allows a new one with the same id (ALLOW_DUPLICATE_FAILED_ONLY): that is
        how RetryImage reruns a build in place (rerun=True), while a completed build never reruns."""

        async def start(client: Client) -> str:
            for attempt in range(RERUN_WAITS if rerun else 1):
                try:
                    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                        WORKFLOW_NAME,
                        build,
                        id=workflow_id(build.context.image_arn),
                        task_queue=CONTROL_QUEUE,
                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                        execution_timeout=timedelta(hours=int(build.system.get("timeoutHours", 48))),
                    )
                    return str(handle.result_run_id)
                except WorkflowAlreadyStartedError:
                    if attempt + 1 >= RERUN_WAITS or not rerun:
                        raise ApiError(
                            "ResourceInUseException", f"the build of {build.context.image_arn} is still running"
                        ) from None
                    # The image's final state is written just before its run closes: a retry
                    # that arrives in between waits that moment out.
                    await asyncio.sleep(0.25)
            raise AssertionError("unreachable")

        return self._call(start)

    def run_status(self, workflow_id: str) -> str | None:
        """The status of the workflow's latest run ("RUNNING", "COMPLETED", "FAILED", ...), None
        if there is none: how engine/builds/resume.py tells a build that never started."""

        async def describe(client: Client) -> str | None:
            try:
                status = (await client.get_workflow_handle(workflow_id).describe()).status
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise
            return status.name if status is not None else None

        return self._call(describe)

    def cancel_build(self, image_arn: str) -> None:
        async def cancel(client: Client) -> None:
            await client.get_workflow_handle(workflow_id(image_arn)).cancel()

        self._call(cancel)

    def send_step_action(self, image_arn: str, signal: StepActionSignal) -> None:
        async def send(client: Client) -> None:
            await client.get_workflow_handle(workflow_id(image_arn)).signal("SendWorkflowStepAction", signal)

        self._call(send)

    # -- lifecycle policies (engine/lifecycle) --------------------------------------------------

    def sync_lifecycle_schedule(self, policy_arn: str, account: str, enabled: bool) -> None:
        from engine.lifecycle.schedules import sync_schedule

        self._call(lambda client: sync_schedule(client, policy_arn, account, enabled))

    def start_lifecycle_execution(self, request: LifecycleRunRequest, workflow_id: str) -> None:
        from engine.lifecycle.model import WORKFLOW_NAME

        async def start(client: Client) -> None:
            await client.start_workflow(
                WORKFLOW_NAME, request, id=workflow_id, task_queue=CONTROL_QUEUE, execution_timeout=timedelta(days=400)
            )

        self._call(start)

    def cancel_workflow(self, workflow_id: str) -> bool:
        """Request cancellation; False when the workflow is not running (any more)."""

        async def cancel(client: Client) -> bool:
            try:
                await client.get_workflow_handle(workflow_id).cancel()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            return True

        return self._call(cancel)

    def apply_pipeline_schedule(self, want: PipelineSchedule, deleted: bool = False) -> str:
        """Make a pipeline's Temporal schedule match its record (engine/pipelines/schedules.py)."""
        from engine.pipelines.schedules import apply

        return self._call(lambda client: apply(client, want, deleted))

    def start_pipeline_run(self, run: PipelineRunInput) -> str:
        """Start a pipeline run now (StartImagePipelineExecution): the same workflow a schedule
        tick starts, with the build the API prepared."""
        from engine.pipelines.model import RUN_WORKFLOW
        from engine.pipelines.schedules import pipeline_name

        assert run.build is not None
        image_arn = run.build.context.image_arn
        run_id = f"image-pipeline-run/{pipeline_name(run.pipeline_arn)}/{workflow_id(image_arn)}"

        async def start(client: Client) -> str:
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                RUN_WORKFLOW, run, id=run_id, task_queue=CONTROL_QUEUE
            )
            return str(handle.result_run_id)

        return self._call(start)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
