"""The events, shaped as EventBridge delivers AWS service events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

SOURCE = "aws.imagebuilder"
IMAGE_STATE_CHANGE = "EC2 Image Builder Image State Change"
WORKFLOW_STATE_CHANGE = "EC2 Image Builder Workflow State Change"
STEP_STATE_CHANGE = "EC2 Image Builder Workflow Step State Change"
STEP_WAITING = "EC2 Image Builder Workflow Step Waiting"
CVE_DETECTED = "EC2 Image Builder CVE Detected"
PIPELINE_AUTO_DISABLED = "EC2 Image Builder Image Pipeline Automatically Disabled"


def region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 else ""


def envelope(detail_type: str, account: str, resources: list[str], detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": SOURCE,
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region_of(resources[0]) if resources else "",
        "resources": [r for r in resources if r],
        "detail": detail,
    }


def image_state_change(account: str, image_arn: str, previous: str, state: dict[str, Any]) -> dict[str, Any]:
    current = {k: state[k] for k in ("status", "reason") if state.get(k)}
    return envelope(
        IMAGE_STATE_CHANGE, account, [image_arn], {"previous-state": {"status": previous}, "state": current}
    )


def workflow_state_change(
    account: str, image_arn: str, body: dict[str, Any], execution_id: str, previous: str
) -> dict[str, Any]:
    detail = {
        "workflow-execution-id": execution_id,
        "workflow-type": body.get("type"),
        "previous-state": {"status": previous},
        "state": {k: body[k] for k in ("status", "message") if body.get(k)},
    }
    resources = [image_arn, str(body.get("workflowBuildVersionArn") or "")]
    return envelope(WORKFLOW_STATE_CHANGE, account, resources, {k: v for k, v in detail.items() if v is not None})


def step_state_change(
    account: str, body: dict[str, Any], step_id: str, workflow_execution_id: str, previous: str
) -> dict[str, Any]:
    detail = {
        "workflow-execution-id": workflow_execution_id,
        "workflow-step-execution-id": step_id,
        "workflow-step-name": body.get("name"),
        "workflow-step-action": body.get("action"),
        "previous-state": {"status": previous},
        "state": {k: body[k] for k in ("status", "message") if body.get(k)},
    }
    resources = [str(body.get("imageBuildVersionArn") or ""), str(body.get("workflowBuildVersionArn") or "")]
    return envelope(STEP_STATE_CHANGE, account, resources, detail)


def step_waiting(account: str, body: dict[str, Any], step_id: str, workflow_execution_id: str) -> dict[str, Any]:
    """As Image Builder documents it for WaitForAction steps."""
    detail = {
        "workflow-execution-id": workflow_execution_id,
        "workflow-step-execution-id": step_id,
        "workflow-step-name": body.get("name"),
    }
    resources = [str(body.get("imageBuildVersionArn") or ""), str(body.get("workflowBuildVersionArn") or "")]
    return envelope(STEP_WAITING, account, resources, detail)


def cve_detected(account: str, image_arn: str, pipeline_arn: str | None, counts: dict[str, int]) -> dict[str, Any]:
    detail = {"resource-id": image_arn, "finding-severity-counts": counts}
    return envelope(CVE_DETECTED, account, [image_arn, pipeline_arn or ""], detail)


def pipeline_auto_disabled(account: str, pipeline_arn: str, failures: int, last_image_arn: str) -> dict[str, Any]:
    """A pipeline disabled after `failures` consecutive failed scheduled runs (autoDisablePolicy)."""
    detail = {
        "image-pipeline-arn": pipeline_arn,
        "consecutive-failures": failures,
        "last-failed-image-arn": last_image_arn,
        "reason": f"disabled after {failures} consecutive failed scheduled runs",
    }
    return envelope(PIPELINE_AUTO_DISABLED, account, [pipeline_arn, last_image_arn], detail)
