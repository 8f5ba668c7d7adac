"""Read-only views of workflow and lifecycle executions.

The build and lifecycle workflows write these records as they run; until they exist the
lists are empty. What the writers must store (kind; arn and name both the execution id; parent; body):

- "workflow-execution": id ``wf-<uuid>``, parent = the image build version ARN, body shaped
  like GetWorkflowExecution (plus ``retried``).
- "workflow-step-execution": id ``step-<uuid>``, parent = the workflow execution id, body
  shaped like GetWorkflowStepExecution; ``"_waiting": true`` while a WaitForAction step waits
  for SendWorkflowStepAction.
- "lifecycle-execution": id ``lce-<uuid>``, parent = the lifecycle policy ARN (or the image
  ARN for StartResourceStateUpdate), body shaped like LifecycleExecution plus ``_resources``:
  LifecycleExecutionResource entries, those for an image's AMIs/containers carrying
  ``parentResourceId`` = the image build version ARN.
"""

from __future__ import annotations

from typing import Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.registry import operation
from engine.observability.log_locations import step_with_locations, steps_with_locations
from engine.resources import arns, paging
from engine.resources.common import public
from engine.store import Record

WORKFLOW_EXECUTION = "workflow-execution"
STEP_EXECUTION = "workflow-step-execution"
LIFECYCLE_EXECUTION = "lifecycle-execution"


def _by_id(ctx: RequestContext, kind: str, ident: str, what: str) -> Record:
    rec = ctx.tx.get(ident, kind)
    if rec is None or rec.account != ctx.account:
        raise errors.not_found(f"{what} {ident} does not exist")
    return rec


def _image(ctx: RequestContext, arn_text: str) -> Record:
    arns.parse(arn_text, "image")
    rec = ctx.tx.get(arn_text, "image")
    if rec is None or rec.account != ctx.account:
        raise errors.not_found(f"image {arn_text} does not exist")
    return rec


def _by_start(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.body.get("startTime") or r.created, r.created))


@operation("GetWorkflowExecution")
def get_workflow_execution(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _by_id(ctx, WORKFLOW_EXECUTION, params["workflowExecutionId"], "workflow execution")
    return {**public(rec.body), "workflowExecutionId": rec.name, "imageBuildVersionArn": rec.parent}


@operation("ListWorkflowExecutions")
def list_workflow_executions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    image = _image(ctx, params["imageBuildVersionArn"])
    records = _by_start(ctx.tx.find(WORKFLOW_EXECUTION, accounts=[ctx.account], parent=image.arn))
    items = [{**public(r.body), "workflowExecutionId": r.name} for r in records]
    chunk, token = paging.page(items, params)
    state = image.body.get("state") or {}
    return {
        "workflowExecutions": chunk,
        "imageBuildVersionArn": image.arn,
        # The image's failure reason, available even when no executions remain.
        "message": state.get("reason") if state.get("status") == "FAILED" else None,
        "nextToken": token,
    }


@operation("GetWorkflowStepExecution")
def get_workflow_step_execution(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _by_id(ctx, STEP_EXECUTION, params["stepExecutionId"], "workflow step execution")
    return step_with_locations(
        ctx, {**public(rec.body), "stepExecutionId": rec.name, "workflowExecutionId": rec.parent}
    )


@operation("ListWorkflowStepExecutions")
def list_workflow_step_executions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    execution = _by_id(ctx, WORKFLOW_EXECUTION, params["workflowExecutionId"], "workflow execution")
    records = _by_start(ctx.tx.find(STEP_EXECUTION, accounts=[ctx.account], parent=execution.name))
    items = [{**public(r.body), "stepExecutionId": r.name} for r in records]
    chunk, token = paging.page(items, params)
    return {
        "steps": steps_with_locations(ctx, execution, chunk),
        "workflowBuildVersionArn": execution.body.get("workflowBuildVersionArn"),
        "workflowExecutionId": execution.name,
        "imageBuildVersionArn": execution.parent,
        "message": execution.body.get("message"),
        "nextToken": token,
    }


@operation("ListWaitingWorkflowSteps")
def list_waiting_workflow_steps(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    records = [r for r in ctx.tx.find(STEP_EXECUTION, accounts=[ctx.account]) if r.body.get("_waiting")]
    items = [{**public(r.body), "stepExecutionId": r.name, "workflowExecutionId": r.parent} for r in _by_start(records)]
    chunk, token = paging.page(items, params)
    return {"steps": chunk, "nextToken": token}


def _lifecycle_execution(rec: Record) -> dict[str, Any]:
    return {**public(rec.body), "lifecycleExecutionId": rec.name}


@operation("GetLifecycleExecution")
def get_lifecycle_execution(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _by_id(ctx, LIFECYCLE_EXECUTION, params["lifecycleExecutionId"], "lifecycle execution")
    return {"lifecycleExecution": _lifecycle_execution(rec)}


@operation("ListLifecycleExecutions")
def list_lifecycle_executions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn_text = params["resourceArn"]
    arn = arns.parse(arn_text)
    if arn.kind not in ("lifecycle-policy", "image"):
        raise errors.invalid(
            f"{arn_text} is a {arn.kind} ARN; give a lifecycle policy ARN or an image build version ARN"
        )
    records = ctx.tx.find(LIFECYCLE_EXECUTION, accounts=[ctx.account], parent=arn_text)
    # A deleted policy's past executions stay listable; an unknown resource with none is an error.
    if not records and ctx.tx.get(arn_text, arn.kind) is None:
        raise errors.not_found(f"{arn.kind} {arn_text} does not exist")
    items = [_lifecycle_execution(r) for r in reversed(_by_start(records))]  # newest first
    chunk, token = paging.page(items, params)
    return {"lifecycleExecutions": chunk, "nextToken": token}


@operation("ListLifecycleExecutionResources")
def list_lifecycle_execution_resources(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _by_id(ctx, LIFECYCLE_EXECUTION, params["lifecycleExecutionId"], "lifecycle execution")
    parent = params.get("parentResourceId")
    resources = [r for r in rec.body.get("_resources") or [] if r.get("parentResourceId") == parent]
    chunk, token = paging.page(resources, params)
    return {
        "lifecycleExecutionId": rec.name,
        "lifecycleExecutionState": rec.body.get("state"),
        "resources": chunk,
        "nextToken": token,
    }
