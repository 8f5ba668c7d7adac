"""Temporal interceptors that give every build its observability, in every process that talks
to Temporal, without touching the workflow or the activities themselves:

- client (API server, workers): ImageBuild and ImagePipelineRun starts carry the ImageArn,
  RecipeArn and PipelineArn search attributes;
- workflow (control worker): an ImageBuild started as a child (pipeline runs, StartImageBuild)
  gets them too;
- activity (every worker): the build context for log lines (logs.py) and span attributes, step
  durations and slots in use (metrics.py), and the copy of the step's logs to s3Logs.

Install them with ``Client.connect(..., interceptors=...)``: workers made from that client use
them as worker interceptors as well.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import temporalio.client
import temporalio.worker
import temporalio.workflow
from opentelemetry import trace
from temporalio import activity
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError, RPCStatusCode

from engine.builds.model import WORKFLOW_NAME, BuildInput
from engine.observability import log_locations, search_attributes
from engine.observability.logs import build_context
from engine.observability.metrics import SLOTS, STEP_SECONDS
from workers.blobstore import BlobStore
from workers.contracts import BuildContext, StepRequest

log = logging.getLogger(__name__)

PIPELINE_RUN_WORKFLOW = "ImagePipelineRun"  # engine/pipelines/model.py RUN_WORKFLOW
SPAN_PREFIX = "imagebuilder."
RETRY_SEARCH_ATTRIBUTES_AFTER = 10.0


@dataclasses.dataclass(frozen=True)
class LogShipping:
    """Where s3Logs copies go on this worker (the same settings disk exports use)."""

    blobs: BlobStore
    export_dir: Path
    s3_endpoint_url: str = ""


#: Name of the extern function that tells workflows whether the search attributes are usable.
_READY_EXTERN = "imagebuilder_search_attributes_ready"


class BuildInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    def __init__(self, shipping: LogShipping | None = None) -> None:
        self.shipping = shipping
        #: Set once this client's namespace is known to have our search attributes.
        self.search_attributes_ready = False
        #: Until when starts leave them out, after Temporal said they are not defined.
        self.search_attributes_unavailable_until = 0.0

    def use_search_attributes(self) -> bool:
        return self.search_attributes_ready and time.monotonic() >= self.search_attributes_unavailable_until

    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        return _ClientOutbound(next, self)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        return _ActivityInbound(next, self.shipping)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[_READY_EXTERN] = lambda: self.search_attributes_ready
        return _WorkflowInbound


def _undefined_search_attribute(exc: RPCError) -> bool:
    return exc.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in exc.message.lower()


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    def __init__(self, next: temporalio.client.OutboundInterceptor, root: BuildInterceptor) -> None:
        super().__init__(next)
        self.root = root

    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        arg = input.args[0] if input.args else None
        wanted = None
        if input.workflow == WORKFLOW_NAME and isinstance(arg, BuildInput):
            wanted = search_attributes.for_build(arg)
        elif input.workflow == PIPELINE_RUN_WORKFLOW and getattr(arg, "pipeline_arn", None):
            wanted = search_attributes.for_pipeline_run(arg.pipeline_arn, getattr(arg, "build", None))  # type: ignore[union-attr]
        if wanted is not None:
            span = trace.get_current_span()
            for pair in wanted:
                span.set_attribute(SPAN_PREFIX + pair.key.name, str(pair.value))
        if wanted is None or input.search_attributes is not None or not self.root.use_search_attributes():
            return await super().start_workflow(input)
        try:
            return await super().start_workflow(dataclasses.replace(input, search_attributes=wanted))
        except RPCError as exc:
            if not _undefined_search_attribute(exc):
                raise
            # Not registered on this namespace (yet): the build matters more than its index entry.
            log.warning("starting %s without search attributes: %s", input.id, exc.message)
            self.root.search_attributes_unavailable_until = time.monotonic() + RETRY_SEARCH_ATTRIBUTES_AFTER
            return await super().start_workflow(input)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    pipeline_arn = ""

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        arg = input.args[0] if input.args else None
        self.pipeline_arn = str(getattr(arg, "pipeline_arn", "") or "")
        return await super().execute_workflow(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def __init__(self, next: temporalio.worker.WorkflowOutboundInterceptor, root: _WorkflowInbound) -> None:
        super().__init__(next)
        self.root = root

    async def start_child_workflow(
        self, input: temporalio.worker.StartChildWorkflowInput
    ) -> temporalio.workflow.ChildWorkflowHandle[Any, Any]:
        arg = input.args[0] if input.args else None
        # Only once this worker saw them registered: a child start naming unknown attributes
        # would fail the parent's workflow task. (Command attributes are not compared on replay.)
        if (
            input.workflow == WORKFLOW_NAME
            and isinstance(arg, BuildInput)
            and input.search_attributes is None
            and temporalio.workflow.extern_functions()[_READY_EXTERN]()
        ):
            input.search_attributes = search_attributes.for_build(arg, self.root.pipeline_arn)
        return await super().start_child_workflow(input)


def _build_fields(request: object) -> dict[str, str]:
    context = getattr(request, "context", None)
    if not isinstance(context, BuildContext):
        return {}
    fields = {"image_arn": context.image_arn, "executor": context.executor}
    if isinstance(request, StepRequest):
        fields.update(stage=request.workflow_type, step=request.step_name, action=request.action)
    return fields


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    def __init__(self, next: temporalio.worker.ActivityInboundInterceptor, shipping: LogShipping | None) -> None:
        super().__init__(next)
        self.shipping = shipping

    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        request = input.args[0] if input.args else None
        fields = _build_fields(request)
        span = trace.get_current_span()  # the tracing interceptor's RunActivity span, when tracing is on
        for key, value in fields.items():
            span.set_attribute(SPAN_PREFIX + key, value)
        queue = activity.info().task_queue
        started, outcome = time.monotonic(), "failed"
        with build_context(**fields), SLOTS.slot(queue):
            try:
                result = await super().execute_activity(input)
                outcome = "ok"
                return result
            except (asyncio.CancelledError, CancelledError):
                outcome = "cancelled"
                raise
            finally:
                if isinstance(request, StepRequest):
                    took = time.monotonic() - started
                    STEP_SECONDS.labels(request.action, request.context.executor, outcome).observe(took)
                    log.info("step %s (%s) %s after %.2f s", request.step_name, request.action, outcome, took)
                    if outcome != "cancelled":
                        await self._ship_logs(request)

    async def _ship_logs(self, request: StepRequest) -> None:
        uri = log_locations.s3_logs_uri(
            request.context.infrastructure, request.context.image_arn, request.workflow_type, request.step_name
        )
        if not uri or self.shipping is None:
            return
        ref = log_locations.step_log_ref(request.context.log_prefix, request.workflow_type, request.step_name)
        shipping = self.shipping
        try:
            count = await asyncio.to_thread(
                log_locations.ship_step_logs,
                shipping.blobs.path(ref),
                uri,
                shipping.export_dir,
                shipping.s3_endpoint_url,
            )
            log.info("copied %d log files of step %s to %s", count, request.step_name, uri)
        except Exception as exc:  # the logs' copy must never fail the build
            log.warning("could not copy the logs of step %s to %s: %s", request.step_name, uri, exc)
