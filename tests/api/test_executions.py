"""Workflow and lifecycle executions, scan findings and the marketplace through real boto3 clients.

Nothing writes executions yet (builds arrive with the orchestration), so the lists start empty
and records are then written into the server's store in the shape the build and lifecycle
workflows will write them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from engine.store import Record
from tests.api.conftest import ACCOUNT, Server, check_output, error_code
from tests.api.test_images import fails, image_record, put_records

ARN = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}"
IMAGE = f"{ARN}:image/exec/1.0.0/1"
WORKFLOW = "arn:aws:imagebuilder:us-east-1:aws:workflow/build/build-image/1.0.0/1"
WF_ID = f"wf-{uuid.UUID(int=1)}"
STEP_ID = f"step-{uuid.UUID(int=2)}"
WAIT_ID = f"step-{uuid.UUID(int=3)}"
LCE_ID = f"lce-{uuid.UUID(int=4)}"
POLICY = f"{ARN}:lifecycle-policy/keep-five"


def record(kind: str, ident: str, parent: str, body: dict[str, Any], created: str = "") -> Record:
    return Record(arn=ident, kind=kind, account=ACCOUNT, name=ident, parent=parent, body=body, created=created)


def test_empty_before_builds(ib: Any, server: Server) -> None:
    put_records(
        server, [image_record("exec-empty", "1.0.0", 1, "FAILED", state={"status": "FAILED", "reason": "boom"})]
    )
    image = f"{ARN}:image/exec-empty/1.0.0/1"
    listed = ib.list_workflow_executions(imageBuildVersionArn=image)
    check_output("ListWorkflowExecutions", listed)
    assert listed["workflowExecutions"] == [] and listed["message"] == "boom"
    waiting = ib.list_waiting_workflow_steps()
    check_output("ListWaitingWorkflowSteps", waiting)
    assert waiting["steps"] == []
    findings = ib.list_image_scan_findings()
    check_output("ListImageScanFindings", findings)
    assert findings["findings"] == []
    aggregated = ib.list_image_scan_finding_aggregations()
    check_output("ListImageScanFindingAggregations", aggregated)
    assert aggregated["aggregationType"] == "accountId" and aggregated["responses"] == []


def test_unknown_ids(ib: Any) -> None:
    unknown_wf, unknown_step, unknown_lce = f"wf-{uuid.uuid4()}", f"step-{uuid.uuid4()}", f"lce-{uuid.uuid4()}"
    for call, kw in [
        (ib.get_workflow_execution, {"workflowExecutionId": unknown_wf}),
        (ib.list_workflow_step_executions, {"workflowExecutionId": unknown_wf}),
        (ib.get_workflow_step_execution, {"stepExecutionId": unknown_step}),
        (ib.get_lifecycle_execution, {"lifecycleExecutionId": unknown_lce}),
        (ib.list_lifecycle_execution_resources, {"lifecycleExecutionId": unknown_lce}),
        (ib.list_workflow_executions, {"imageBuildVersionArn": f"{ARN}:image/none/1.0.0/1"}),
        (ib.list_lifecycle_executions, {"resourceArn": f"{ARN}:lifecycle-policy/none"}),
    ]:
        err = fails(call, **kw)
        assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err), (call, err)
    err = fails(ib.list_lifecycle_executions, resourceArn=f"{ARN}:image-pipeline/p")
    assert error_code(err) == "InvalidRequestException" and "lifecycle policy ARN" in str(err)
    err = fails(ib.cancel_lifecycle_execution, lifecycleExecutionId=unknown_lce)
    assert error_code(err) == "InvalidRequestException" and "does not exist" in str(err)
    err = fails(ib.send_workflow_step_action, stepExecutionId=unknown_step, imageBuildVersionArn=IMAGE, action="RESUME")
    assert error_code(err) == "ResourceNotFoundException"


@pytest.fixture(scope="module")
def executions(server: Server) -> None:
    common = {"imageBuildVersionArn": IMAGE, "workflowBuildVersionArn": WORKFLOW}
    put_records(
        server,
        [
            image_record("exec", "1.0.0", 1, "BUILDING"),
            record(
                "workflow-execution",
                WF_ID,
                IMAGE,
                {
                    "workflowBuildVersionArn": WORKFLOW,
                    "type": "BUILD",
                    "status": "RUNNING",
                    "totalStepCount": 7,
                    "totalStepsSucceeded": 1,
                    "totalStepsFailed": 0,
                    "totalStepsSkipped": 0,
                    "startTime": "2026-01-01T00:00:00.000Z",
                },
            ),
            record(
                "workflow-step-execution",
                STEP_ID,
                WF_ID,
                {
                    **common,
                    "name": "LaunchBuildInstance",
                    "action": "LaunchInstance",
                    "status": "COMPLETED",
                    "inputs": '{"waitFor": "ssmAgent"}',
                    "outputs": '{"instanceId": "i-1"}',
                    "startTime": "2026-01-01T00:00:01.000Z",
                    "attemptNumber": 1,
                    "maxAttempts": 1,
                },
            ),
            record(
                "workflow-step-execution",
                WAIT_ID,
                WF_ID,
                {
                    **common,
                    "name": "Approve",
                    "action": "WaitForAction",
                    "status": "RUNNING",
                    "startTime": "2026-01-01T00:01:00.000Z",
                    "_waiting": True,
                },
            ),
            record(
                "lifecycle-execution",
                LCE_ID,
                POLICY,
                {
                    "lifecyclePolicyArn": POLICY,
                    "state": {"status": "IN_PROGRESS"},
                    "resourcesImpactedSummary": {"hasImpactedResources": True},
                    "startTime": "2026-01-02T00:00:00.000Z",
                    "_resources": [
                        {
                            "accountId": ACCOUNT,
                            "resourceId": IMAGE,
                            "region": "us-east-1",
                            "action": {"name": "DELETE"},
                            "state": {"status": "IN_PROGRESS"},
                        },
                        {
                            "accountId": ACCOUNT,
                            "resourceId": "disk-1",
                            "region": "us-east-1",
                            "parentResourceId": IMAGE,
                            "state": {"status": "SUCCESS"},
                        },
                    ],
                },
            ),
            record(
                "image-scan-finding",
                "finding-1",
                IMAGE,
                {
                    "awsAccountId": ACCOUNT,
                    "imageBuildVersionArn": IMAGE,
                    "severity": "HIGH",
                    "title": "CVE-2026-0001 openssl",
                    "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-0001"},
                },
            ),
            record(
                "image-scan-finding",
                "finding-2",
                IMAGE,
                {
                    "awsAccountId": ACCOUNT,
                    "imageBuildVersionArn": IMAGE,
                    "severity": "MEDIUM",
                    "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2026-0002"},
                },
            ),
        ],
    )


def test_workflow_executions(ib: Any, executions: None) -> None:
    listed = ib.list_workflow_executions(imageBuildVersionArn=IMAGE)
    check_output("ListWorkflowExecutions", listed)
    assert [e["workflowExecutionId"] for e in listed["workflowExecutions"]] == [WF_ID]
    got = ib.get_workflow_execution(workflowExecutionId=WF_ID)
    check_output("GetWorkflowExecution", got)
    assert got["imageBuildVersionArn"] == IMAGE and got["status"] == "RUNNING" and got["totalStepCount"] == 7

    steps = ib.list_workflow_step_executions(workflowExecutionId=WF_ID)
    check_output("ListWorkflowStepExecutions", steps)
    assert [s["name"] for s in steps["steps"]] == ["LaunchBuildInstance", "Approve"]
    assert steps["workflowBuildVersionArn"] == WORKFLOW and steps["imageBuildVersionArn"] == IMAGE
    step = ib.get_workflow_step_execution(stepExecutionId=STEP_ID)
    check_output("GetWorkflowStepExecution", step)
    assert step["workflowExecutionId"] == WF_ID and step["outputs"] == '{"instanceId": "i-1"}'

    waiting = ib.list_waiting_workflow_steps()
    check_output("ListWaitingWorkflowSteps", waiting)
    assert [s["stepExecutionId"] for s in waiting["steps"]] == [WAIT_ID]
    assert waiting["steps"][0]["workflowExecutionId"] == WF_ID


def test_send_workflow_step_action(ib: Any, executions: None) -> None:
    err = fails(
        ib.send_workflow_step_action, stepExecutionId=WAIT_ID, imageBuildVersionArn=f"{IMAGE}0", action="RESUME"
    )
    assert error_code(err) == "InvalidParameterValueException" and "belongs to" in str(err)
    err = fails(ib.send_workflow_step_action, stepExecutionId=STEP_ID, imageBuildVersionArn=IMAGE, action="RESUME")
    assert error_code(err) == "ResourceInUseException" and "not waiting" in str(err)
    err = fails(ib.send_workflow_step_action, stepExecutionId=WAIT_ID, imageBuildVersionArn=IMAGE, action="STOP")
    assert error_code(err) == "ServiceUnavailableException" and "SendWorkflowStepAction" in str(err)


def test_lifecycle_executions(ib: Any, executions: None) -> None:
    got = ib.get_lifecycle_execution(lifecycleExecutionId=LCE_ID)
    check_output("GetLifecycleExecution", got)
    execution = got["lifecycleExecution"]
    assert execution["lifecyclePolicyArn"] == POLICY and execution["state"]["status"] == "IN_PROGRESS"
    assert execution["startTime"].year == 2026
    # The policy itself is gone (or never existed here), but its executions stay listable.
    listed = ib.list_lifecycle_executions(resourceArn=POLICY)
    check_output("ListLifecycleExecutions", listed)
    assert [e["lifecycleExecutionId"] for e in listed["lifecycleExecutions"]] == [LCE_ID]
    assert ib.list_lifecycle_executions(resourceArn=IMAGE)["lifecycleExecutions"] == []

    top = ib.list_lifecycle_execution_resources(lifecycleExecutionId=LCE_ID)
    check_output("ListLifecycleExecutionResources", top)
    assert [r["resourceId"] for r in top["resources"]] == [IMAGE]
    assert top["lifecycleExecutionState"] == {"status": "IN_PROGRESS"}
    inner = ib.list_lifecycle_execution_resources(lifecycleExecutionId=LCE_ID, parentResourceId=IMAGE)
    assert [r["resourceId"] for r in inner["resources"]] == ["disk-1"]

    # No workflow runs behind this hand-written record: cancelling ends it at once.
    assert ib.cancel_lifecycle_execution(lifecycleExecutionId=LCE_ID)["lifecycleExecutionId"] == LCE_ID
    cancelled = ib.get_lifecycle_execution(lifecycleExecutionId=LCE_ID)["lifecycleExecution"]
    assert cancelled["state"]["status"] == "CANCELLED" and "endTime" in cancelled
    err = fails(ib.cancel_lifecycle_execution, lifecycleExecutionId=LCE_ID)
    assert error_code(err) == "ResourceInUseException" and "CANCELLED" in str(err)


def test_scan_findings(ib: Any, executions: None) -> None:
    high = ib.list_image_scan_findings(filters=[{"name": "severity", "values": ["HIGH"]}])
    check_output("ListImageScanFindings", high)
    assert [f["title"] for f in high["findings"]] == ["CVE-2026-0001 openssl"]
    by_cve = ib.list_image_scan_findings(filters=[{"name": "vulnerabilityId", "values": ["CVE-2026-0002"]}])
    assert [f["severity"] for f in by_cve["findings"]] == ["MEDIUM"]
    err = fails(ib.list_image_scan_findings, filters=[{"name": "colour", "values": ["red"]}])
    assert error_code(err) == "InvalidRequestException"

    account = ib.list_image_scan_finding_aggregations()
    check_output("ListImageScanFindingAggregations", account)
    assert account["responses"] == [
        {
            "accountAggregation": {
                "accountId": ACCOUNT,
                "severityCounts": {"all": 2, "critical": 0, "high": 1, "medium": 1},
            }
        }
    ]
    per_cve = ib.list_image_scan_finding_aggregations(filter={"name": "vulnerabilityId", "values": ["CVE-2026-0001"]})
    assert per_cve["aggregationType"] == "vulnerabilityId"
    assert [r["vulnerabilityIdAggregation"]["vulnerabilityId"] for r in per_cve["responses"]] == ["CVE-2026-0001"]
    per_image = ib.list_image_scan_finding_aggregations(filter={"name": "imageBuildVersionArn", "values": [IMAGE]})
    assert per_image["responses"][0]["imageAggregation"]["severityCounts"]["all"] == 2
    err = fails(ib.list_image_scan_finding_aggregations, filter={"name": "colour", "values": ["red"]})
    assert error_code(err) == "InvalidRequestException"


def test_marketplace(ib: Any) -> None:
    err = fails(
        ib.get_marketplace_resource,
        resourceType="COMPONENT_DATA",
        resourceArn="arn:aws:imagebuilder:us-east-1:aws-marketplace:component/x/1.0.0/1",
    )
    assert error_code(err) == "InvalidRequestException" and "no AWS Marketplace" in str(err)
