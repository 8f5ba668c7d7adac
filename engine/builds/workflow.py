"""The image build workflow: one generic interpreter of Image Builder workflow documents.

Stages run in order (build, then tests, then distribution); each document's steps run in
order, each step an activity named after its action on the task queue of a worker that can
run it. Instances a step launches are pinned to the host that holds them. Whatever happens
(a failed step, a cancellation, a worker that died), the `finally` path terminates every
instance the build still holds, so nothing leaks.

Placement (docs/ARCHITECTURE.md): a launch no worker has room for now (NoCapacity) is sent
again after a growing pause, up to LAUNCH_WAIT. A host that stops answering (a step on its
queue not taken within HOST_WAIT, or its heartbeats gone through every retry) loses its
instances: the stage runs again from its start on the pool queue (from the build stage if the
image was on that host), at most MAX_HOST_RETRIES times; the lost instances are removed by
their host when it is back (a TerminateInstance left on its queue, and its own sweep).

Progress (execution records, the image's state) goes to the store through one writer beside
the build: what was written while its previous batch was in flight goes in its next, so a step
costs one record write at most and never waits for one. Only the final state waits, after every
record before it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as ActivityTimeout  # not the builtin wait_condition raises

with workflow.unsafe.imports_passed_through():
    from engine.builds.model import (
        BuildInput,
        BuildResult,
        BuildWrite,
        ExecutionRecord,
        ImageStateUpdate,
        RecordBatch,
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
#: LaunchInstance: the same, but NoCapacity comes back to the build, which waits for room
#: (_dispatch) without using up the attempts a real failure gets.
LAUNCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_attempts=3,
    non_retryable_error_types=["StepFailed", "NotSupported", "NoCapacity"],
)
#: Step activities heartbeat every 5 s; a worker silent for this long is presumed dead and the
#: step is retried (on the same host queue, once that host's worker is back).
HEARTBEAT_TIMEOUT = timedelta(seconds=20)
MAX_PARALLEL_TESTS = 5
#: A step on a host queue that no worker takes within this long: the host is gone (a restarted
#: worker is back well within it; its host-queue slots are many, so a busy one never waits this long).
HOST_WAIT = timedelta(seconds=60)
#: How many times a stage runs again after a host was lost in it, before the build fails.
MAX_HOST_RETRIES = 2
#: A launch no host has room for is sent again after 2, 4, ... up to 60 s, for this long in all:
#: builds queue for a busy fleet, but one that can never fit fails with the reason in the end.
LAUNCH_WAIT = timedelta(hours=6)
LAUNCH_PAUSE_MAX = timedelta(seconds=60)
#: How long a lost instance's TerminateInstance waits on its host's queue for the host to come back.
LOST_CLEANUP_WAIT = timedelta(hours=1)


class StepFailure(Exception):
    """A step failed and its onFailure said to stop the workflow."""

    def __init__(self, message: str, step: str, step_execution_id: str, workflow_arn: str, wf_id: str) -> None:
        super().__init__(message)
        self.step = step
        self.step_execution_id = step_execution_id
        self.workflow_arn = workflow_arn
        self.workflow_execution_id = wf_id


class HostLost(Exception):
    """A step's host stopped answering: its instances are gone with it."""

    def __init__(self, queue: str, reason: str, step: str, step_execution_id: str, workflow_arn: str, wf_id: str):
        super().__init__(f"host {_host_of(queue)} stopped answering during step {step}: {reason}")
        self.queue = queue
        self.step = step
        self.step_execution_id = step_execution_id
        self.workflow_arn = workflow_arn
        self.workflow_execution_id = wf_id


def _host_of(queue: str) -> str:
    return queue.split("@", 1)[1] if "@" in queue else queue


def _is_host_queue(queue: str) -> bool:
    return "@" in queue


def _lost_host(exc: ActivityError) -> bool:
    """The step never reached a worker (schedule-to-start), or its worker went silent on every attempt."""
    cause = exc.cause
    return isinstance(cause, ActivityTimeout) and cause.type in (TimeoutType.SCHEDULE_TO_START, TimeoutType.HEARTBEAT)


def _why_lost(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START:
        return f"no worker took it from the host's queue within {int(HOST_WAIT.total_seconds())} s"
    return f"its worker stopped heartbeating ({int(HEARTBEAT_TIMEOUT.total_seconds())} s) on every attempt"


def _no_capacity(exc: ActivityError) -> bool:
    return isinstance(exc.cause, ApplicationError) and exc.cause.type == "NoCapacity"


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


# Not in the sandbox: it re-runs the serialization context for every payload of every workflow
# task in its restricted importer, the largest part of the workflow's own time on a short build.
# This module and what it calls on the workflow path are deterministic by construction (the
# workflow API only: workflow.now, workflow.uuid4, timers and activities); the end-to-end test
# replays a real build's history to keep it so.
@workflow.defn(name="ImageBuild", sandboxed=False)
class ImageBuildWorkflow:
    def __init__(self) -> None:
        self.input: BuildInput | None = None
        self.instances: dict[str, str] = {}  # instance id -> the task queue of its host
        self.connect: dict[str, str] = {}  # instance id -> how to reach it, if a failed build keeps it
        #: Instances on hosts that stopped answering (id -> host queue), and their TerminateInstance.
        self.lost: dict[str, str] = {}
        self.lost_cleanups: list[asyncio.Task[None]] = []
        self.host_retries = 0
        self.artifact: Artifact | None = None
        self.workflow_outputs: dict[str, Any] = {}
        self.output_resources: dict[str, Any] = {}
        self.actions: dict[str, StepActionSignal] = {}
        self.status = "PENDING"
        #: The package inventory of the last CollectImageMetadata step (a blob-store reference).
        self.packages_ref = ""
        # Progress not yet written (in order), how many writes were queued and how many of
        # those are in the store; the writer task; set once the final state is being written.
        self.outbox: list[BuildWrite] = []
        self.queued = 0
        self.written = 0
        self.writer: asyncio.Task[None] | None = None
        self.closing = False

    @workflow.signal(name="SendWorkflowStepAction")
    def step_action(self, signal: StepActionSignal) -> None:
        self.actions[signal.step_execution_id] = signal

    @workflow.query(name="status")
    def current_status(self) -> str:
        return self.status

    @workflow.query(name="held_instances")
    def held_instances(self) -> list[str]:
        """What a host's sweep asks: an instance of this build not listed here was given up."""
        return sorted(self.instances)

    @workflow.run
    async def run(self, build: BuildInput) -> BuildResult:
        self.input = build
        self.writer = asyncio.ensure_future(self._write_records())
        try:
            await self._stages(build)
            await self._cleanup()
            await self._finish("AVAILABLE", output_resources=self.output_resources or None)
            return BuildResult("AVAILABLE", output_resources=self.output_resources or None)
        except (asyncio.CancelledError, CancelledError):
            await self._cleanup(remove_artifact=True)
            await self._finish("CANCELLED", reason="the build was cancelled")
            raise
        except StepFailure as failure:
            kept = self._kept_for_debugging()
            await self._cleanup(remove_artifact=True, keep_instances=bool(kept))
            context = {
                "imageStatus": "FAILED",
                "workflowExecutionId": failure.workflow_execution_id,
                "workflowArn": failure.workflow_arn,
                "stepExecutionId": failure.step_execution_id,
                "failedStep": failure.step,
            }
            reason = f"step {failure.step} failed: {failure}"
            if kept:
                hints = "; ".join(f"{iid}: {hint}" for iid, hint in kept.items())
                arn = self.input.context.image_arn
                reason = (  # the store keeps 1,024 characters of a reason: the failure is cut, not the hints
                    f"{reason[:400]} -- terminateInstanceOnFailure is false, so instances were kept for debugging "
                    f"({hints}); remove them with `imagebuilder instances remove --image {arn}`"
                )
            await self._finish("FAILED", reason=reason, failure_context=context)
            raise ApplicationError(reason, type="BuildFailed", non_retryable=True) from None
        except Exception as exc:  # a bug or an unexpected failure: still leave nothing behind
            await self._cleanup(remove_artifact=True)
            await self._finish("FAILED", reason=_message(exc))
            raise

    # -- stages -------------------------------------------------------------------------------

    async def _stages(self, build: BuildInput) -> None:
        """Build, test, distribute; a stage that lost its host runs again (from the build stage
        when the image was on that host)."""
        stage = "BUILD"
        while True:
            try:
                if stage == "BUILD":
                    await self._stage("BUILDING", [w for w in build.workflows if w.type == "BUILD"])
                    stage = "TEST"
                tests = [w for w in build.workflows if w.type == "TEST"]
                if stage == "TEST" and build.tests_enabled and tests:
                    self._set_state("TESTING")
                    await self._run_tests(tests)
                stage = "DISTRIBUTION"
                await self._stage("DISTRIBUTING", [w for w in build.workflows if w.type == "DISTRIBUTION"])
                return
            except HostLost as lost:
                await self._after_host_lost(lost)
                if self.artifact is not None and self.artifact.queue == lost.queue:
                    workflow.logger.warning("the image was on %s: building it again", _host_of(lost.queue))
                    self.artifact = None
                    stage = "BUILD"

    async def _after_host_lost(self, lost: HostLost) -> None:
        """Give up the lost host's instances (its TerminateInstance waits on its queue), end the
        stage's instances elsewhere, and fail the build once the retries are used up."""
        assert self.input is not None
        for iid, queue in list(self.instances.items()):
            if queue == lost.queue:
                self.lost[iid] = queue
                del self.instances[iid]
                self.lost_cleanups.append(asyncio.ensure_future(self._terminate_lost(iid, queue)))
        await self._release_held()
        if self.host_retries >= MAX_HOST_RETRIES:
            raise StepFailure(
                f"{lost} -- the stage already ran again {self.host_retries} times after a host was lost",
                lost.step,
                lost.step_execution_id,
                lost.workflow_arn,
                lost.workflow_execution_id,
            )
        self.host_retries += 1
        workflow.logger.warning("%s; running the stage again elsewhere (retry %d)", lost, self.host_retries)

    async def _terminate_lost(self, instance_id: str, queue: str) -> None:
        """Best effort: done if the host comes back while the build runs (then cancelled); its
        own sweep removes the instance otherwise."""
        assert self.input is not None
        request = StepRequest(
            context=self.input.context,
            workflow_type="BUILD",
            workflow_execution_id="",
            step_execution_id=f"lost-{instance_id}",
            step_name=f"TerminateLostInstance-{instance_id}",
            action="TerminateInstance",
            inputs={"instanceId": instance_id},
        )
        try:
            await workflow.execute_activity(
                "TerminateInstance",
                request,
                task_queue=queue,
                schedule_to_start_timeout=LOST_CLEANUP_WAIT,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
                result_type=StepResult,
            )
            self.lost.pop(instance_id, None)
        except ActivityError as exc:
            workflow.logger.warning("lost instance %s was not removed: %s", instance_id, _message(exc))

    async def _stage(self, status: str, runs: list[WorkflowRun]) -> None:
        if not runs:
            return
        self._set_state(status)
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

            tasks = [asyncio.ensure_future(one(r)) for r in members]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                # One failed the stage (or lost its host): the others stop rather than run on unseen.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

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
        self._record(WORKFLOW_EXECUTION, wf_id, self.input.context.image_arn, {**base, "status": "RUNNING"})
        try:
            for step in doc.steps:
                await self._run_step(run, wf_id, step, state)
        except StepFailure as failure:
            await self._rollback(run, wf_id, state, failure)
            self._record(
                WORKFLOW_EXECUTION,
                wf_id,
                self.input.context.image_arn,
                {**self._counts(state), "status": "FAILED", "message": str(failure)[:500], "endTime": _now()},
            )
            raise
        except HostLost as lost:
            retry = self.host_retries < MAX_HOST_RETRIES
            message = f"{lost}; {'the stage runs again on another host' if retry else 'no retries left'}"
            self._record(
                WORKFLOW_EXECUTION,
                wf_id,
                self.input.context.image_arn,
                {**self._counts(state), "status": "FAILED", "message": message[:500], "endTime": _now()},
            )
            raise
        except (asyncio.CancelledError, CancelledError):
            self._record(
                WORKFLOW_EXECUTION,
                wf_id,
                self.input.context.image_arn,
                {**self._counts(state), "status": "CANCELLED", "endTime": _now()},
            )
            raise
        outputs = resolve_outputs(doc, state.context)
        self.workflow_outputs.update(outputs)
        self._record(
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
            self._record(STEP_EXECUTION, step_id, wf_id, {**record, "status": "SKIPPED", "endTime": _now()})
            return
        try:
            inputs = resolve_inputs(step, state.context)
            # Written while the step is dispatched (records of one step stay in order).
            self._record(STEP_EXECUTION, step_id, wf_id, {**record, "status": "RUNNING", "inputs": json.dumps(inputs)})
            if step.action == "WaitForAction":
                result = await self._wait_for_action(step, step_id, wf_id, record)
            else:
                result = await self._execute(run, wf_id, step, step_id, inputs)
        except (asyncio.CancelledError, CancelledError):
            self._record(STEP_EXECUTION, step_id, wf_id, {"status": "CANCELLED", "endTime": _now()})
            raise
        except HostLost as lost:
            state.failed += 1
            self._record(
                STEP_EXECUTION, step_id, wf_id, {"status": "FAILED", "message": str(lost)[:500], "endTime": _now()}
            )
            raise
        except (ActivityError, ApplicationError, ResolutionError) as exc:
            if _is_cancellation(exc):
                self._record(STEP_EXECUTION, step_id, wf_id, {"status": "CANCELLED", "endTime": _now()})
                raise asyncio.CancelledError() from None
            message = _message(exc)
            state.failed += 1
            self._record(
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
        self._record(
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
        queue = self._queue_for(step.action, inputs, run.type)
        try:
            result = await self._dispatch(request, queue, wf_id)
        except ActivityError as exc:
            if _is_host_queue(queue) and _lost_host(exc):
                raise HostLost(queue, _why_lost(exc), step.name, step_id, run.arn, wf_id) from None
            raise
        instance_id = result.outputs.get("instanceId")
        if result.instance_queue and isinstance(instance_id, str):
            self.instances[instance_id] = result.instance_queue
            if isinstance(result.outputs.get("connect"), str):
                self.connect[instance_id] = result.outputs["connect"]
        if step.action == "TerminateInstance":
            self.instances.pop(str(inputs.get("instanceId")), None)
        if result.artifact is not None:
            self.artifact = result.artifact
        if result.output_resources:
            for key, value in result.output_resources.items():
                self.output_resources.setdefault(key, []).extend(value)
        packages = result.outputs.get("packagesRef")
        if step.action == "CollectImageMetadata" and isinstance(packages, str) and packages:
            self.packages_ref = packages  # read into the image record when it becomes AVAILABLE
        return result

    async def _dispatch(self, request: StepRequest, queue: str, wf_id: str) -> StepResult:
        """The step's activity; a launch no host has room for is sent again after a pause."""
        launch = request.action == "LaunchInstance"
        started, pause, why = workflow.now(), timedelta(seconds=2), ""
        while True:
            try:
                result: StepResult = await workflow.execute_activity(
                    request.action,
                    request,
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=request.timeout_seconds or 3600),
                    schedule_to_start_timeout=HOST_WAIT if _is_host_queue(queue) else None,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=LAUNCH_RETRY if launch else STEP_RETRY,
                    result_type=StepResult,
                )
                if pause > timedelta(seconds=2):  # it waited: the step says how long, and why
                    said = f"waited {int((workflow.now() - started).total_seconds())} s for room ({why})"
                    result = dataclasses.replace(result, message="; ".join(m for m in (said, result.message) if m))
                return result
            except ActivityError as exc:
                if not (launch and _no_capacity(exc)):
                    raise
                waited = workflow.now() - started
                if waited >= LAUNCH_WAIT:
                    raise ApplicationError(
                        f"no {request.context.executor} host had room for the instance in "
                        f"{int(waited.total_seconds())} s; the last answer: {_message(exc)}",
                        type="NoCapacity",
                        non_retryable=True,
                    ) from None
                why = exc.cause.message if isinstance(exc.cause, ApplicationError) else _message(exc)
                if pause == timedelta(seconds=2):  # once: the step says why it waits
                    self._record(
                        STEP_EXECUTION, request.step_execution_id, wf_id, {"message": f"waiting for room: {why}"[:500]}
                    )
                await workflow.sleep(pause)
                pause = min(pause * 2, LAUNCH_PAUSE_MAX)

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
        self._record(STEP_EXECUTION, step_id, wf_id, {"_waiting": True})
        await self._records_written()  # ListWaitingWorkflowSteps must find the step once it waits
        timeout = timedelta(seconds=step.timeout_seconds or 3 * 24 * 3600)
        try:
            await workflow.wait_condition(lambda: step_id in self.actions, timeout=timeout)
        except TimeoutError:
            self._record(STEP_EXECUTION, step_id, wf_id, {"_waiting": False})
            raise ApplicationError(
                f"no action was sent within {int(timeout.total_seconds())} s", type="Timeout"
            ) from None
        signal = self.actions[step_id]
        self._record(STEP_EXECUTION, step_id, wf_id, {"_waiting": False})
        if signal.action == "STOP":
            raise ApplicationError(f"stopped by SendWorkflowStepAction: {signal.reason}", type="Stopped")
        return StepResult(outputs={"action": signal.action, "reason": signal.reason})

    async def _rollback(self, run: WorkflowRun, wf_id: str, state: _RunState, failure: StepFailure) -> None:
        """Undo completed steps in reverse order: an instance a failed workflow launched is terminated."""
        assert self.input is not None
        self._record(WORKFLOW_EXECUTION, wf_id, self.input.context.image_arn, {"status": "ROLLBACK_IN_PROGRESS"})
        for done in reversed(state.done):
            spec = ACTIONS.get(done.step.action)
            if not rollback_enabled(done.step, state.context) or spec is None or not spec.rollback:
                self._record(STEP_EXECUTION, done.step_execution_id, wf_id, {"rollbackStatus": "SKIPPED"})
                continue
            instance_id = done.outputs.get("instanceId")
            status = "COMPLETED"
            if self._keeps_instances_on_failure():
                status = "SKIPPED"  # the instance stays for debugging (terminateInstanceOnFailure false)
            elif isinstance(instance_id, str) and instance_id in self.instances:
                try:
                    await self._terminate([instance_id])
                except (ActivityError, ApplicationError):
                    status = "FAILED"
            self._record(STEP_EXECUTION, done.step_execution_id, wf_id, {"rollbackStatus": status})

    # -- cleanup and records ------------------------------------------------------------------

    def _keeps_instances_on_failure(self) -> bool:
        assert self.input is not None
        return self.input.system.get("terminateInstanceOnFailure") is False

    def _kept_for_debugging(self) -> dict[str, str]:
        """Instances a failed build leaves running, with how to reach each (empty: none kept)."""
        if not self._keeps_instances_on_failure():
            return {}
        return {iid: self.connect.get(iid, "see `imagebuilder instances` on its worker host") for iid in self.instances}

    async def _terminate(
        self, instance_ids: list[str], remove_artifact: bool = False, keep_instances: bool = False, queue: str = ""
    ) -> None:
        assert self.input is not None
        by_queue: dict[str, list[str]] = {}
        for iid in instance_ids:
            by_queue.setdefault(self.instances[iid], []).append(iid)
        if remove_artifact and self.artifact is not None:
            by_queue.setdefault(self.artifact.queue, [])
        if queue:  # this host only (an artifact elsewhere is that host's call)
            by_queue = {queue: by_queue.get(queue, [])}
        for queue, ids in by_queue.items():
            await workflow.execute_activity(
                "CleanupBuild",
                CleanupRequest(
                    context=self.input.context,
                    instance_ids=tuple(ids),
                    remove_artifacts=remove_artifact and self.artifact is not None and queue == self.artifact.queue,
                    artifact=self.artifact,
                    keep_instances=keep_instances,
                ),
                task_queue=queue,
                # A dead host must not hold up the build's end: its own sweep removes what it holds.
                schedule_to_start_timeout=HOST_WAIT if _is_host_queue(queue) else None,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(maximum_attempts=10, initial_interval=timedelta(seconds=2)),
                result_type=CleanupResult,
            )
            for iid in ids:
                self.instances.pop(iid, None)

    async def _cleanup(self, remove_artifact: bool = False, keep_instances: bool = False) -> None:
        """Terminate every instance still held, even after a cancellation or a failure (unless a
        failed build keeps them for debugging). A lost instance's removal still waiting on its
        host's queue is withdrawn: that host's sweep removes it once it is back."""
        for task in self.lost_cleanups:
            task.cancel()
        await self._release_held(remove_artifact, keep_instances)

    async def _release_held(self, remove_artifact: bool = False, keep_instances: bool = False) -> None:
        """Each host on its own: one that does not answer leaves the others' cleanup done."""
        by_queue: dict[str, list[str]] = {}
        for iid, queue in self.instances.items():
            by_queue.setdefault(queue, []).append(iid)
        if remove_artifact and self.artifact is not None:
            by_queue.setdefault(self.artifact.queue, [])
        for queue, ids in by_queue.items():
            artifact_here = self.artifact is not None and queue == self.artifact.queue
            try:
                await self._terminate(ids, remove_artifact and artifact_here, keep_instances, queue=queue)
            except (ActivityError, ApplicationError) as exc:
                workflow.logger.error("cleanup on %s failed: %s", _host_of(queue), _message(exc))

    def _set_state(self, status: str) -> None:
        """A state on the way: written with the next batch, the build goes on meanwhile."""
        assert self.input is not None
        self.status = status
        self._queue(BuildWrite(image_state=ImageStateUpdate(self.input.context.image_arn, status)))

    async def _finish(
        self,
        status: str,
        reason: str = "",
        output_resources: dict[str, Any] | None = None,
        failure_context: dict[str, Any] | None = None,
    ) -> None:
        """The final state, in the store before the build ends and after every record before it.

        The writer's batch in flight lands first; what is left goes with the state as a local
        activity: the build has nothing else to do, so holding its workflow task costs nothing
        and saves a round trip through the server.
        """
        assert self.input is not None
        self.status = status
        update = ImageStateUpdate(
            self.input.context.image_arn,
            status,
            reason,
            output_resources,
            failure_context,
            packages_ref=self.packages_ref if status == "AVAILABLE" else "",
        )
        self._queue(BuildWrite(image_state=update))
        self.closing = True
        writer = self.writer
        if writer is not None:
            await workflow.wait_condition(writer.done)
        await self._write_batch(local=True)

    def _record(self, kind: str, ident: str, parent: str, body: dict[str, Any]) -> None:
        """Queue a (partial) write of an execution record; the build does not wait for it."""
        assert self.input is not None
        self._queue(BuildWrite(record=ExecutionRecord(kind, ident, parent, self.input.account, body)))

    def _queue(self, write: BuildWrite) -> None:
        self.outbox.append(write)
        self.queued += 1

    async def _records_written(self) -> None:
        """Until everything queued so far is in the store."""
        upto = self.queued
        await workflow.wait_condition(lambda: self.written >= upto)

    async def _write_records(self) -> None:
        """The build's one record writer: one batch at a time, each with all that queued while
        the one before was written, so records stay in order and a step costs one write at most."""
        while True:
            await workflow.wait_condition(lambda: bool(self.outbox) or self.closing)
            if self.closing:
                return  # _finish writes the rest with the final state
            await self._write_batch(local=False)

    async def _write_batch(self, local: bool) -> None:
        batch, upto = RecordBatch(tuple(self.outbox)), self.queued
        self.outbox = []
        if not batch.writes:
            return
        try:
            if local:
                await workflow.execute_local_activity("SaveBuildRecords", batch, start_to_close_timeout=RECORD_TIMEOUT)
            else:
                # A regular activity, not a local one: a local activity would hold back the
                # workflow task, and with it the dispatch of the step these records describe.
                await workflow.execute_activity(
                    "SaveBuildRecords", batch, task_queue=CONTROL_QUEUE, start_to_close_timeout=RECORD_TIMEOUT
                )
        except ActivityError as exc:
            # The activity already retried; a lost record must not stop the build or its final state.
            workflow.logger.warning("build records were not written: %s", _message(exc))
        except (asyncio.CancelledError, CancelledError):
            self.outbox[:0] = batch.writes  # cancelled before it was written: it goes with the next
            raise
        self.written = max(self.written, upto)
