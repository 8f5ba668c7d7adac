"""The LifecycleExecution workflow: one run of a lifecycle policy, or one StartResourceStateUpdate.

Plan (evaluate the rules and record the execution), then apply the actions one image at a time
so a cancellation stops between images (actions already done stay done, as Image Builder
documents), then finish the record. A state update with ``updateAt`` waits for that moment on
a durable timer, PENDING until then. A dry run plans and returns the plan, writing nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.lifecycle.facts import parse_time
    from engine.lifecycle.model import (
        WORKFLOW_NAME,
        ActionResult,
        FinishRequest,
        LifecycleRunRequest,
        LifecycleRunResult,
        Plan,
        PlanRequest,
    )

RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))


@workflow.defn(name=WORKFLOW_NAME)
class LifecycleExecutionWorkflow:
    @workflow.run
    async def run(self, request: LifecycleRunRequest) -> LifecycleRunResult:
        execution_id = request.execution_id or f"lce-{workflow.uuid4()}"
        try:
            return await self._run(request, execution_id)
        except asyncio.CancelledError:
            # Cancelled while waiting for updateAt or between two images: what was done stays done.
            await self._finish(FinishRequest(execution_id, "CANCELLED", "cancelled by CancelLifecycleExecution"))
            raise

    async def _run(self, request: LifecycleRunRequest, execution_id: str) -> LifecycleRunResult:
        update = request.state_update
        if update is not None and update.update_at:
            wait = parse_time(update.update_at) - workflow.now()
            if wait.total_seconds() > 0:
                await workflow.sleep(wait)
        plan: Plan = await workflow.execute_activity(
            "PlanLifecycleExecution",
            PlanRequest(request, execution_id, workflow.info().workflow_id, _iso(workflow.now())),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
            result_type=Plan,
        )
        if request.dry_run or plan.skip_reason:
            status = "SKIPPED" if plan.skip_reason else "DRY_RUN"
            return LifecycleRunResult(execution_id, status, plan.actions, reason=plan.skip_reason)
        results: list[ActionResult] = []
        try:
            for action in plan.actions:
                result: ActionResult = await workflow.execute_activity(
                    "ApplyLifecycleAction",
                    action,
                    start_to_close_timeout=timedelta(minutes=15),
                    retry_policy=RETRY,
                    result_type=ActionResult,
                )
                results.append(result)
        except ActivityError as exc:
            reason = str(exc.cause or exc)
            await self._finish(FinishRequest(execution_id, "FAILED", reason))
            return LifecycleRunResult(execution_id, "FAILED", plan.actions, tuple(results), reason)
        failed = [r for r in results if r.status == "FAILED"]
        status = "FAILED" if failed else "SUCCESS"
        reason = "; ".join(f"{r.image_arn}: {r.reason}" for r in failed)
        await self._finish(FinishRequest(execution_id, status, reason))
        return LifecycleRunResult(execution_id, status, plan.actions, tuple(results), reason)

    async def _finish(self, request: FinishRequest) -> None:
        await workflow.execute_activity(
            "FinishLifecycleExecution", request, start_to_close_timeout=timedelta(minutes=2), retry_policy=RETRY
        )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
