"""One run of an image pipeline, on the control queue: what a schedule tick and
StartImagePipelineExecution both start.

A tick checks the pipeline (gone or DISABLED: nothing to do) and its start condition: under
EXPRESSION_MATCH_AND_DEPENDENCY_UPDATES_AVAILABLE it builds only when what the recipe's
references resolve to now (recipe, parent image, components; `x` wildcards pick the newest)
differs from what the pipeline's last build resolved (``_resolved`` on its image record; failed
and cancelled builds don't count, so a failing pipeline keeps trying). The build runs as the
ImageBuild child workflow, and the outcome updates the pipeline: a success resets
consecutiveFailures, a failed scheduled run adds one, and reaching the autoDisablePolicy count
(5 by default) disables the pipeline and pauses its schedule.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, ChildWorkflowError, TemporalError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from engine.api.errors import ApiError
    from engine.builds.model import WORKFLOW_NAME, BuildInput, BuildResult, workflow_id
    from engine.pipelines.model import (
        DEFAULT_FAILURE_COUNT,
        DEPENDENCY_UPDATES,
        RUN_WORKFLOW,
        PipelineDecision,
        PipelineRunInput,
        PipelineRunOutcome,
        PipelineRunResult,
        PipelineTick,
    )

if TYPE_CHECKING:
    from engine.store import Tx

log = logging.getLogger(__name__)
KIND = "image-pipeline"
IMAGE = "image"
#: Image states whose build does not count as "the last build" for the dependency check.
NOT_BUILT = frozenset({"FAILED", "CANCELLED", "DELETED"})
_BUILD_KEYS = (
    "imageRecipeArn",
    "containerRecipeArn",
    "infrastructureConfigurationArn",
    "distributionConfigurationArn",
    "imageTestsConfiguration",
    "imageScanningConfiguration",
    "enhancedImageMetadataEnabled",
    "workflows",
    "executionRole",
    "loggingConfiguration",
)


def build_params(pipeline: dict[str, Any], tags: dict[str, str] | None) -> dict[str, Any]:
    """A pipeline's settings as the CreateImage members prepare_build takes."""
    params = {k: pipeline[k] for k in _BUILD_KEYS if pipeline.get(k) is not None}
    return {**params, "tags": tags or {}, "_pipelineArn": pipeline["arn"]}


def last_build(tx: Any, pipeline: Any) -> Any:
    """The pipeline's newest image that is built or building (None if there is none)."""
    images = [
        r
        for r in tx.find(IMAGE, accounts=[pipeline.account], parent=pipeline.arn)
        if ((r.body.get("state") or {}).get("status")) not in NOT_BUILT
    ]
    return max(images, key=lambda r: (r.created, r.build or 0)) if images else None


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PipelineActivities:
    """The run's steps that need the store (the control worker is the process that has it)."""

    def __init__(self, store: Any, blobs: Any, registry: str, catchup: timedelta) -> None:
        self.store, self.blobs, self.registry, self.catchup = store, blobs, registry, catchup

    @activity.defn(name="PreparePipelineBuild")
    async def prepare(self, tick: PipelineTick) -> PipelineDecision:
        return await asyncio.to_thread(self._prepare, tick)

    def _prepare(self, tick: PipelineTick) -> PipelineDecision:
        from engine.builds.prepare import Caller, load_build_input, prepare_build, resolved_dependencies
        from engine.resources import arns
        from engine.store.db import now_iso

        try:
            with self.store.transaction(write=True) as tx:
                rec = tx.get(tick.pipeline_arn, KIND)
                if rec is None:
                    raise _Skip("the pipeline no longer exists")
                if rec.body.get("status") == "DISABLED":
                    raise _Skip("the pipeline is DISABLED")
                for image in tx.find(IMAGE, accounts=[rec.account], parent=rec.arn):
                    if image.body.get("_pipelineRun") == tick.run_id:  # this activity ran before
                        return PipelineDecision(load_build_input(self.blobs, image.body["_buildInput"]))
                region = arns.parse(rec.arn, KIND).region
                caller = Caller(rec.account, region, tx, self.blobs, self.registry)
                params = build_params(rec.body, rec.body.get("imageTags"))
                condition = (rec.body.get("schedule") or {}).get("pipelineExecutionStartCondition")
                if condition == DEPENDENCY_UPDATES:
                    last = last_build(tx, rec)
                    if last is not None and last.body.get("_resolved") == resolved_dependencies(caller, params):
                        raise _Skip(f"no dependency updates since {last.arn}")
                image, build = prepare_build(caller, params, "SCHEDULED")
                tx.update(image.with_body({**image.body, "_pipelineRun": tick.run_id}))
                tx.update(rec.with_body({**rec.body, "dateLastRun": now_iso(), "_lastImageArn": image.arn}))
                return PipelineDecision(build)
        except _Skip as skip:
            return PipelineDecision(None, skip.reason)
        except ApiError as exc:  # the recipe or a configuration went away: the run fails
            return PipelineDecision(None, f"{exc.code}: {exc.message}", failed=True)

    @activity.defn(name="RecordPipelineRun")
    async def record(self, outcome: PipelineRunOutcome) -> bool:
        """Count the outcome; True if it disabled the pipeline (whose schedule is then paused)."""
        disabled = await asyncio.to_thread(self._record, outcome)
        if disabled is not None:
            from temporalio.service import RPCError

            from engine.pipelines.schedules import apply, desired

            try:
                await apply(activity.client(), desired(disabled, self.catchup))
            except RPCError as exc:  # the record says DISABLED (ticks skip); reconciliation pauses it
                log.warning("schedule of %s not paused now: %s", outcome.pipeline_arn, exc)
        return disabled is not None

    def _record(self, outcome: PipelineRunOutcome) -> dict[str, Any] | None:
        from engine.pipelines.schedules import new_version

        with self.store.transaction(write=True) as tx:
            rec = tx.get(outcome.pipeline_arn, KIND)
            if rec is None or rec.body.get("_lastRecordedRun") == outcome.run_id:
                return None
            body = {**rec.body, "_lastRecordedRun": outcome.run_id}
            failures = int(body.get("consecutiveFailures") or 0)
            disabled = None
            if outcome.status == "AVAILABLE":
                body["consecutiveFailures"] = 0
            elif outcome.status == "FAILED" and outcome.scheduled:
                failures += 1
                body["consecutiveFailures"] = failures
                policy = (body.get("schedule") or {}).get("autoDisablePolicy") or {}
                limit = int(policy.get("failureCount") or DEFAULT_FAILURE_COUNT)
                if failures >= limit and body.get("status") == "ENABLED":
                    body["status"] = "DISABLED"
                    body["_disabledReason"] = f"disabled after {failures} consecutive failed scheduled runs"
                    body["_scheduleVersion"] = new_version()
                    disabled = body
                    _publish_disabled(tx, rec.account, outcome, failures, body)
            # A manual failure and a cancellation leave the count as it is.
            tx.update(rec.with_body(body))
            return disabled

    def all(self) -> list[Any]:
        return [self.prepare, self.record]


def _publish_disabled(tx: Tx, account: str, outcome: PipelineRunOutcome, failures: int, body: dict[str, Any]) -> None:
    """The "Image Pipeline Automatically Disabled" event, to the pipeline's infrastructure topic."""
    from engine.events import model
    from engine.events.outbox import publish

    infra = tx.get(str(body.get("infrastructureConfigurationArn") or ""), "infrastructure-configuration")
    topic = str((infra.body if infra else {}).get("snsTopicArn") or "")
    publish(tx, model.pipeline_auto_disabled(account, outcome.pipeline_arn, failures, outcome.image_arn), topic)


ACTIVITY_TIMEOUT = timedelta(minutes=2)
ACTIVITY_RETRIES = RetryPolicy(maximum_attempts=5)


@workflow.defn(name=RUN_WORKFLOW)
class ImagePipelineRunWorkflow:
    @workflow.run
    async def run(self, request: PipelineRunInput) -> PipelineRunResult:
        run_id = workflow.info().workflow_id
        scheduled = request.build is None
        build = request.build
        if build is None:
            decision: PipelineDecision = await workflow.execute_activity(
                "PreparePipelineBuild",
                PipelineTick(request.pipeline_arn, run_id),
                result_type=PipelineDecision,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
            )
            if decision.build is None:
                if not decision.failed:
                    return PipelineRunResult("SKIPPED", reason=decision.reason)
                outcome = PipelineRunOutcome(request.pipeline_arn, run_id, True, "FAILED", reason=decision.reason)
                disabled = await self._record(outcome)
                return PipelineRunResult("FAILED", reason=decision.reason, disabled=disabled)
            build = decision.build
        status, reason = await self._build(build)
        image_arn = build.context.image_arn
        outcome = PipelineRunOutcome(request.pipeline_arn, run_id, scheduled, status, image_arn, reason)
        disabled = await self._record(outcome)
        return PipelineRunResult(status, image_arn, reason, disabled)

    async def _build(self, build: BuildInput) -> tuple[str, str]:
        try:
            result: BuildResult = await workflow.execute_child_workflow(
                WORKFLOW_NAME,
                build,
                id=workflow_id(build.context.image_arn),
                task_queue=workflow.info().task_queue,
                result_type=BuildResult,
                execution_timeout=timedelta(hours=int(build.system.get("timeoutHours", 48))),
                # Ending a pipeline run (e.g. terminating it) leaves its build to finish.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
            return result.status, result.reason
        except ChildWorkflowError as exc:
            cause = exc.cause
            if isinstance(cause, CancelledError):
                return "CANCELLED", str(cause)
            return "FAILED", str(cause or exc)

    async def _record(self, outcome: PipelineRunOutcome) -> bool:
        try:
            disabled: bool = await workflow.execute_activity(
                "RecordPipelineRun",
                outcome,
                result_type=bool,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ACTIVITY_RETRIES,
            )
            return disabled
        except (ActivityError, TemporalError) as exc:  # the build's own record stands either way
            workflow.logger.warning("pipeline run outcome not recorded: %s", exc)
            return False
