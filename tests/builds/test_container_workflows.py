"""Workflow behaviour on real container builds: WaitForAction released by RESUME and STOP, and a
failing test workflow whose onFailure is CONTINUE."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.builds.conftest import Stack
from tests.builds.test_container_build import COMPONENT, TERMINAL, leftovers, setup_build, wait_for

MANAGED = "arn:aws:imagebuilder:us-east-1:aws:workflow"
ROLE = "arn:aws:iam::123456789012:role/imagebuilder"

GATED_BUILD = """name: gated-build
schemaVersion: 1.0
steps:
  - name: LaunchBuildInstance
    action: LaunchInstance
    onFailure: Abort
    inputs:
      waitFor: ssmAgent
  - name: ApplyBuildComponents
    action: ExecuteComponents
    onFailure: Abort
    inputs:
      instanceId.$: $.stepOutputs.LaunchBuildInstance.instanceId
  - name: Approval
    action: WaitForAction
    timeoutSeconds: 600
outputs:
  - name: InstanceId
    value: $.stepOutputs.LaunchBuildInstance.instanceId
"""


def gated(ib: Any, name: str) -> dict[str, Any]:
    params = setup_build(ib, name, tests=False)
    wf = ib.create_workflow(name=f"{name}-gate", semanticVersion="1.0.0", type="BUILD", data=GATED_BUILD)
    params["workflows"] = [
        {"workflowArn": wf["workflowBuildVersionArn"]},
        {"workflowArn": f"{MANAGED}/distribution/distribute-container/x.x.x"},
    ]
    params["executionRole"] = ROLE
    return params


def waiting_step(ib: Any, arn: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for step in ib.list_waiting_workflow_steps()["steps"]:
            if step["imageBuildVersionArn"] == arn:
                return dict(step)
        status = ib.get_image(imageBuildVersionArn=arn)["image"]["state"]
        assert status["status"] not in TERMINAL, status
        time.sleep(1)
    raise AssertionError("the build never waited")


def test_wait_for_action_resume_and_stop(stack: Stack) -> None:
    ib = stack.client()
    go = ib.create_image(**gated(ib, f"gate-go-{uuid.uuid4().hex[:6]}"))["imageBuildVersionArn"]
    stop = ib.create_image(**gated(ib, f"gate-stop-{uuid.uuid4().hex[:6]}"))["imageBuildVersionArn"]
    step = waiting_step(ib, go)
    assert step["action"] == "WaitForAction" and step["name"] == "Approval"
    ib.send_workflow_step_action(stepExecutionId=step["stepExecutionId"], imageBuildVersionArn=go, action="RESUME")
    step2 = waiting_step(ib, stop)
    ib.send_workflow_step_action(
        stepExecutionId=step2["stepExecutionId"], imageBuildVersionArn=stop, action="STOP", reason="not today"
    )
    assert wait_for(ib, go, TERMINAL)["state"]["status"] == "AVAILABLE"
    stopped = wait_for(ib, stop, TERMINAL)
    assert stopped["state"]["status"] == "FAILED" and "not today" in stopped["state"]["reason"]
    assert leftovers(go) == [] and leftovers(stop) == []


FAILING_TEST = COMPONENT.replace("grep -q '{{ Greeting }} from the factory' /etc/motd", "exit 1")


def test_failing_test_workflow_with_continue_still_distributes(stack: Stack) -> None:
    ib = stack.client()
    name = f"testfail-{uuid.uuid4().hex[:6]}"
    params = setup_build(ib, name, component=FAILING_TEST)
    params["workflows"] = [
        {"workflowArn": f"{MANAGED}/build/build-container/x.x.x"},
        {"workflowArn": f"{MANAGED}/test/test-container/x.x.x", "onFailure": "CONTINUE", "parallelGroup": "g"},
        {"workflowArn": f"{MANAGED}/distribution/distribute-container/x.x.x"},
    ]
    params["executionRole"] = ROLE
    arn = ib.create_image(**params)["imageBuildVersionArn"]
    image = wait_for(ib, arn, TERMINAL)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    runs = {e["type"]: e for e in ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"]}
    assert runs["TEST"]["status"] == "FAILED" and runs["DISTRIBUTION"]["status"] == "COMPLETED"
    assert leftovers(arn) == []
