"""The image build workflow: one generic interpreter of Image Builder workflow documents.

Stages run in order (build, then tests, then distribution); each document's steps run in
order, each step an activity named after its action on the task queue of a worker that can
run it. Instances a step launches are pinned to the host that holds them. Whatever happens
(a failed step, a cancellation, a worker that died), the `finally` path terminates every
instance the build still holds, so nothing leaks.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from engine.builds.model import (
        BuildInput,
        BuildResult,
        ExecutionRecord,
        ImageStateUpdate,
        StepActionSignal,
        WorkflowRun,
    )
    from engine.workflow_docs import (
        ACTIONS,
        ResolutionError,
        Step,
        bind_parameters,
        evaluate_condition,
        resolve_inputs,
        resolve_outputs,
        rollback_enabled,
    )
    from workers.contracts import (
        CONTROL_QUEUE,
        Artifact,
        CleanupRequest,
        CleanupResult,
        StepRequest,
        StepResult,
        pool_queue,
    )

WORKFLOW_EXECUTION = "workflow-execution"
STEP_EXECUTION = "workflow-step-execution"
RECORD_TIMEOUT = timedelta(seconds=30)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_attempts=3,
    non_retryable_error_types=["StepFailed", "NotSupported"],
)
#: Step activities heartbeat every 5 s; a worker silent for this long is presumed dead and the
#: step is retried (on the same host queue, once that host's worker is back).
HEARTBEAT_TIMEOUT = timedelta(seconds=20)
MAX_PARALLEL_TESTS = 5


class StepFailure(Exception):
    """A step failed and its onFailure said to stop the workflow."""

    def __init__(self, message: str, step: str, step_execution_id: str, workflow_arn: str, wf_id: str) -> None:
        super().__init__(message)
        self.step = step
        self.step_execution_id = step_execution_id
        self.workflow_arn = workflow_arn
        self.workflow_execution_id = wf_id


@dataclass
class _Done:
    step: Step
    step_execution_id: str
    outputs: dict[str, Any]


@dataclass
class _RunState:
    """What one workflow document's run accumulates."""

    context: dict[str, Any]
    done: list[_Done] = field(default_factory=list)
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0


def _now() -> str:
    t = workflow.now()
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _step_message(result: StepResult) -> str:
    parts = [result.message] if result.message else []
    if result.log_ref:
        parts.append(f"logs: {result.log_ref}")
    return "; ".join(parts)


def _is_cancellation(exc: BaseException) -> bool:
    """An activity that ended because the build was cancelled fails with a CancelledError cause."""
    while exc is not None:
        if isinstance(exc, CancelledError | asyncio.CancelledError):
            return True
        exc = exc.cause if isinstance(exc, FailureError) else None  # type: ignore[assignment]
    return False


def _message(exc: BaseException) -> str:
    """The root cause's words, not Temporal's wrapping ("Activity task failed")."""
    while isinstance(exc, FailureError) and exc.cause is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__


@workflow.defn(name="ImageBuild")
class ImageBuildWorkflow:
    def __init__(self) -> None:
        self.input: BuildInput | None = None
        self.instances: dict[str, str] = {}  # instance id -> the task queue of its host
        self.artifact: Artifact | None = None
        self.workflow_outputs: dict[str, Any] = {}
        self.output_resources: dict[str, Any] = {}
        self.actions: dict[str, StepActionSignal] = {}
        self.status = "PENDING"
        self.writes: dict[str, asyncio.Task[None]] = {}

    @workflow.signal(name="SendWorkflowStepAction")
    def step_action(self, signal: StepActionSignal) -> None:
        self.actions[signal.step_execution_id] = signal

    @workflow.query(name="status")
    def current_status(self) -> str:
        return self.status

    @workflow.run
    async def run(self, build: BuildInput) -> BuildResult:
        self.input = build
        try:
            await self._stage("BUILDING", [w for w in build.workflows if w.type == "BUILD"])
            tests = [w for w in build.workflows if w.type == "TEST"]
            if build.tests_enabled and tests:
                await self._set_state("TESTING")
                await self._run_tests(tests)
            await self._stage("DISTRIBUTING", [w for w in build.workflows if w.type == "DISTRIBUTION"])
            await self._cleanup()
            await self._set_state("AVAILABLE", output_resources=self.output_resources or None)
            return BuildResult("AVAILABLE", output_resources=self.output_resources or None)
        except (asyncio.CancelledError, CancelledError):
            await self._cleanup(remove_artifact=True)
            await self._set_state("CANCELLED", reason="the build was cancelled")
            raise
        except StepFailure as failure:
            await self._cleanup(remove_artifact=True)
            context = {
                "imageStatus": "FAILED",
                "workflowExecutionId": failure.workflow_execution_id,
                "workflowArn": failure.workflow_arn,
                "stepExecutionId": failure.step_execution_id,
                "failedStep": failure.step,
            }
            reason = f"step {failure.step} failed: {failure}"
            await self._set_state("FAILED", reason=reason, failure_context=context)
            raise ApplicationError(reason, type="BuildFailed", non_retryable=True) from None
        except Exception as exc:  # a bug or an unexpected failure: still leave nothing behind
            await self._cleanup(remove_artifact=True)
            await self._set_state("FAILED", reason=_message(exc))
            raise

    # -- stages -------------------------------------------------------------------------------

    async def _stage(self, status: str, runs: list[WorkflowRun]) -> None:
        if not runs:
            return
        await self._set_state(status)
        for run in runs:
            await self._run_document(run)

    async def _run_tests(self, runs: list[WorkflowRun]) -> None:
        """Ungrouped test workflows run one after another; a parallel group runs together,
        at most five at a time. onFailure CONTINUE records a failure and goes on."""
        groups: dict[str, list[WorkflowRun]] = {}
        for run in runs:
            groups.setdefault(run.parallel_group or f"__{run.arn}__{len(groups)}", []).append(run)
        for members in groups.values():
            limit = asyncio.Semaphore(MAX_PARALLEL_TESTS)

            async def one(run: WorkflowRun, limit: asyncio.Semaphore = limit) -> None:
                async with limit:
                    try:
                        await self._run_document(run)
                    except StepFailure:
                        if run.on_failure != "CONTINUE":
                            raise
                        workflow.logger.warning("test workflow %s failed; onFailure CONTINUE", run.arn)

            await asyncio.gather(*(one(r) for r in members))

    # -- one workflow document ----------------------------------------------------------------

    async def _run_document(self, run: WorkflowRun) -> dict[str, Any]:
        assert self.input is not None
        doc = run.document
        wf_id = f"wf-{workflow.uuid4()}"
        parameters = bind_parameters(doc, run.parameters)
        state = _RunState(
            context={
                "stepOutputs": {},
                "parameters": parameters,
                "imagebuilder": {**self.input.system, "workflowPhase": run.type.title()},
                "workflowOutputs": dict(self.workflow_outputs),
            }
        )
        base = {
            "workflowBuildVersionArn": run.arn,
            "type": run.type,
            "totalStepCount": len(doc.steps),
            "parallelGroup": run.parallel_group,
            "startTime": _now(),
        }
        self._save(WORKFLOW_EXECUTION, wf_id, self.input.context.image_arn, {**base, "status": "RUNNING"})
        try:
            for step in doc.steps:
                await self._run_step(run, wf_id, step, state)
        except StepFailure as failure:
            await self._rollback(run, wf_id, state, failure)
            await self._save(
                WORKFLOW_EXECUTION,
                wf_id,
                self.input.context.image_arn,
                {**self._counts(state), "status": "FAILED", "message": str(failure)[:500], "endTime": _now()},
            )
            raise
        except (asyncio.CancelledError, CancelledError):
            await self._save(
                WORKFLOW_EXECUTION,
                wf_id,
                self.input.context.image_arn,
                {**self._counts(state), "status": "CANCELLED", "endTime": _now()},
            )
            raise
        outputs = resolve_outputs(doc, state.context)
        self.workflow_outputs.update(outputs)
        self._save(
            WORKFLOW_EXECUTION,
            wf_id,
            self.input.context.image_arn,
            {**self._counts(state), "status": "COMPLETED", "endTime": _now()},
        )
        return outputs

    def _counts(self, state: _RunState) -> dict[str, Any]:
        return {
            "totalStepsSucceeded": state.succeeded,
            "totalStepsFailed": state.failed,
            "totalStepsSkipped": state.skipped,
        }

    async def _run_step(self, run: WorkflowRun, wf_id: str, step: Step, state: _RunState) -> None:
        assert self.input is not None
        step_id = f"step-{workflow.uuid4()}"
        record = {
            "name": step.name,
            "description": step.description or None,
            "action": step.action,
            "workflowBuildVersionArn": run.arn,
            "imageBuildVersionArn": self.input.context.image_arn,
            "onFailure": step.on_failure.value,
            "timeoutSeconds": step.timeout_seconds,
            "startTime": _now(),
        }
        if not evaluate_condition(step.if_, state.context):
            state.skipped += 1
            self._save(STEP_EXECUTION, step_id, wf_id, {**record, "status": "SKIPPED", "endTime": _now()})
            return
        try:
            inputs = resolve_inputs(step, state.context)
            # Written while the step is dispatched (records of one step stay in order).
            running = self._save(
                STEP_EXECUTION, step_id, wf_id, {**record, "status": "RUNNING", "inputs": json.dumps(inputs)}
            )
            if step.action == "WaitForAction":
                await running  # ListWaitingWorkflowSteps must find the step once it waits
                result = await self._wait_for_action(step, step_id, wf_id, record)
            else:
                result = await self._execute(run, wf_id, step, step_id, inputs)
        except (asyncio.CancelledError, CancelledError):
            await self._save(STEP_EXECUTION, step_id, wf_id, {"status": "CANCELLED", "endTime": _now()})
            raise
        except (ActivityError, ApplicationError, ResolutionError) as exc:
            if _is_cancellation(exc):
                await self._save(STEP_EXECUTION, step_id, wf_id, {"status": "CANCELLED", "endTime": _now()})
                raise asyncio.CancelledError() from None
            message = _message(exc)
            state.failed += 1
            await self._save(
                STEP_EXECUTION,
                step_id,
                wf_id,
                {"status": "FAILED", "message": message[:500], "endTime": _now()},
            )
            if step.on_failure.value == "Continue":
                return
            raise StepFailure(message, step.name, step_id, run.arn, wf_id) from None
        state.succeeded += 1
        state.context["stepOutputs"][step.name] = result.outputs
        state.done.append(_Done(step, step_id, result.outputs))
        self._save(
            STEP_EXECUTION,
            step_id,
            wf_id,
            {
                "status": "COMPLETED",
                "outputs": json.dumps(result.outputs),
                "message": _step_message(result)[:500] or None,
                "_logRef": result.log_ref or None,
                "endTime": _now(),
            },
        )

    async def _execute(
        self, run: WorkflowRun, wf_id: str, step: Step, step_id: str, inputs: dict[str, Any]
    ) -> StepResult:
        assert self.input is not None
        ctx = self.input.context
        request = StepRequest(
            context=ctx,
            workflow_type=run.type,
            workflow_execution_id=wf_id,
            step_execution_id=step_id,
            step_name=step.name,
            action=step.action,
            inputs=inputs,
            artifact=self.artifact,
            timeout_seconds=step.timeout_seconds,
        )
        result: StepResult = await workflow.execute_activity(
            step.action,
            request,
            task_queue=self._queue_for(step.action, inputs, run.type),
            start_to_close_timeout=timedelta(seconds=step.timeout_seconds or 3600),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=STEP_RETRY,
            result_type=StepResult,
        )
        instance_id = result.outputs.get("instanceId")
        if result.instance_queue and isinstance(instance_id, str):
            self.instances[instance_id] = result.instance_queue
        if step.action == "TerminateInstance":
            self.instances.pop(str(inputs.get("instanceId")), None)
        if result.artifact is not None:
            self.artifact = result.artifact
        if result.output_resources:
            for key, value in result.output_resources.items():
                self.output_resources.setdefault(key, []).extend(value)
        return result

    def _queue_for(self, action: str, inputs: dict[str, Any], stage: str) -> str:
        assert self.input is not None
        instance = inputs.get("instanceId")
        if isinstance(instance, str) and instance in self.instances:
            return self.instances[instance]
        # A test instance starts where the new image is, when that image is local to one host.
        if action == "LaunchInstance" and stage != "BUILD" and self.artifact is not None:
            return self.artifact.queue
        if self.artifact is not None and stage == "DISTRIBUTION":
            return self.artifact.queue
        return pool_queue(self.input.context.executor)

    async def _wait_for_action(self, step: Step, step_id: str, wf_id: str, record: dict[str, Any]) -> StepResult:
        await self._save(STEP_EXECUTION, step_id, wf_id, {"_waiting": True})
        timeout = timedelta(seconds=step.timeout_seconds or 3 * 24 * 3600)
        try:
            await workflow.wait_condition(lambda: step_id in self.actions, timeout=timeout)
        except TimeoutError:
            await self._save(STEP_EXECUTION, step_id, wf_id, {"_waiting": False})
            raise ApplicationError(
                f"no action was sent within {int(timeout.total_seconds())} s", type="Timeout"
            ) from None
        signal = self.actions[step_id]
        await self._save(STEP_EXECUTION, step_id, wf_id, {"_waiting": False})
        if signal.action == "STOP":
            raise ApplicationError(f"stopped by SendWorkflowStepAction: {signal.reason}", type="Stopped")
        return StepResult(outputs={"action": signal.action, "reason": signal.reason})

    async def _rollback(self, run: WorkflowRun, wf_id: str, state: _RunState, failure: StepFailure) -> None:
        """Undo completed steps in reverse order: an instance a failed workflow launched is terminated."""
        assert self.input is not None
        await self._save(WORKFLOW_EXECUTION, wf_id, self.input.context.image_arn, {"status": "ROLLBACK_IN_PROGRESS"})
        for done in reversed(state.done):
            spec = ACTIONS.get(done.step.action)
            if not rollback_enabled(done.step, state.context) or spec is None or not spec.rollback:
                await self._save(STEP_EXECUTION, done.step_execution_id, wf_id, {"rollbackStatus": "SKIPPED"})
                continue
            instance_id = done.outputs.get("instanceId")
            status = "COMPLETED"
            if isinstance(instance_id, str) and instance_id in self.instances:
                try:
                    await self._terminate([instance_id])
                except (ActivityError, ApplicationError):
                    status = "FAILED"
            await self._save(STEP_EXECUTION, done.step_execution_id, wf_id, {"rollbackStatus": status})

    # -- cleanup and records ------------------------------------------------------------------

    async def _terminate(self, instance_ids: list[str], remove_artifact: bool = False) -> None:
        assert self.input is not None
        by_queue: dict[str, list[str]] = {}
        for iid in instance_ids:
            by_queue.setdefault(self.instances[iid], []).append(iid)
        if remove_artifact and self.artifact is not None:
            by_queue.setdefault(self.artifact.queue, [])
        for queue, ids in by_queue.items():
            await workflow.execute_activity(
                "CleanupBuild",
                CleanupRequest(
                    context=self.input.context,
                    instance_ids=tuple(ids),
                    remove_artifacts=remove_artifact and self.artifact is not None and queue == self.artifact.queue,
                    artifact=self.artifact,
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(maximum_attempts=10, initial_interval=timedelta(seconds=2)),
                result_type=CleanupResult,
            )
            for iid in ids:
                self.instances.pop(iid, None)

    async def _cleanup(self, remove_artifact: bool = False) -> None:
        """Terminate every instance still held, even after a cancellation or a failure."""
        if self.instances or (remove_artifact and self.artifact is not None):
            try:
                await self._terminate(list(self.instances), remove_artifact=remove_artifact)
            except (ActivityError, ApplicationError) as exc:
                workflow.logger.error("cleanup failed: %s", _message(exc))

    async def _set_state(
        self,
        status: str,
        reason: str = "",
        output_resources: dict[str, Any] | None = None,
        failure_context: dict[str, Any] | None = None,
    ) -> None:
        assert self.input is not None
        self.status = status
        await self._flush()
        await workflow.execute_local_activity(
            "SetImageState",
            ImageStateUpdate(self.input.context.image_arn, status, reason, output_resources, failure_context),
            start_to_close_timeout=RECORD_TIMEOUT,
        )

    def _save(self, kind: str, ident: str, parent: str, body: dict[str, Any]) -> asyncio.Task[None]:
        """Write an execution record without holding up the build: writes of one record run in
        order, and every write is done before the image's state changes (see ``_flush``)."""
        assert self.input is not None
        record = ExecutionRecord(kind, ident, parent, self.input.account, body)
        previous = self.writes.get(ident)

        async def write() -> None:
            if previous is not None:
                await previous
            # A regular activity, not a local one: a local activity would hold back the workflow
            # task, and with it the dispatch of the step this record describes.
            await workflow.execute_activity(
                "SaveExecution", record, task_queue=CONTROL_QUEUE, start_to_close_timeout=RECORD_TIMEOUT
            )

        task = asyncio.ensure_future(write())
        self.writes[ident] = task
        return task

    async def _flush(self) -> None:
        pending = list(self.writes.values())
        self.writes.clear()
        # A record write that failed (or was cancelled with the build) must not stop the image
        # state from being written; the activity already retried it.
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                workflow.logger.warning("an execution record was not written: %s", result)
